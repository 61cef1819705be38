import { randomUUID } from 'node:crypto';
import {
  attachStorageSession,
  checkUserHeaders,
  type HandlerContext,
  Headers,
  type MessageDefinition,
  NoRouteError,
  type PublishOptions,
  type ReplyOptions,
  type SendOptions,
  UsageError,
} from '@tidings/core';
import {
  ofType,
  publishRecord,
  type RecordedPublish,
  type RecordedReply,
  type RecordedSend,
  sendRecord,
} from './recorded.js';

export interface TestContextOptions {
  /** The incoming message's type; sets `messageType`. */
  readonly message?: MessageDefinition;
  /** @default 'test.Message', or `message.name` */
  readonly messageType?: string;
  /** @default a new UUID */
  readonly messageId?: string;
  /** @default `messageId` */
  readonly correlationId?: string;
  /** @default `correlationId` */
  readonly conversationId?: string;
  /**
   * Where replies go. Pass `undefined` explicitly to test a message from a send-only sender:
   * `reply` then throws `UsageError`, as on a real endpoint.
   * @default 'TestSender'
   */
  readonly replyTo?: string | undefined;
  /** @default 'TestEndpoint' */
  readonly endpointName?: string;
  /** Extra incoming headers (e.g. a tenant header); the `tidings.*` ones are filled in. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Abort it to test how a handler reacts to the endpoint's stop deadline. */
  readonly signal?: AbortSignal;
  /**
   * Message type → destination. Given, `ctx.send` without `to` and without a route fails with
   * `NoRouteError`, as on a real endpoint; omitted, any send is accepted.
   */
  readonly routes?: Readonly<Record<string, string>>;
  /**
   * The storage session the handler reaches with `storageSession(ctx)` or a store's accessor
   * (`postgresSession(ctx)`): a stub, or a real client inside a transaction of the test's own.
   */
  readonly session?: unknown;
}

/** A `HandlerContext` that records what the handler replies, sends and publishes. */
export interface TestHandlerContext extends HandlerContext {
  /** Replies in order, with their options. */
  readonly replies: readonly RecordedReply[];
  readonly sent: readonly RecordedSend[];
  readonly published: readonly RecordedPublish[];
  /** Message replies of one type, payloads typed. */
  repliesOf<T>(definition: MessageDefinition<T>): Array<RecordedReply<T> & { kind: 'message' }>;
  /** Return-code replies, in order. */
  readonly replyCodes: readonly number[];
  sentOf<T>(definition: MessageDefinition<T>): RecordedSend<T>[];
  publishedOf<T>(definition: MessageDefinition<T>): RecordedPublish<T>[];
}

class TestContext implements TestHandlerContext {
  readonly messageId: string;
  readonly correlationId: string;
  readonly conversationId: string;
  readonly messageType: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly replyTo: string | undefined;
  readonly endpointName: string;
  readonly signal: AbortSignal;
  readonly replies: RecordedReply[] = [];
  readonly sent: RecordedSend[] = [];
  readonly published: RecordedPublish[] = [];
  private readonly routes: ReadonlyMap<string, string> | undefined;

  constructor(options: TestContextOptions) {
    this.messageId = options.messageId ?? randomUUID();
    this.correlationId = options.correlationId ?? this.messageId;
    this.conversationId = options.conversationId ?? this.correlationId;
    this.messageType = options.messageType ?? options.message?.name ?? 'test.Message';
    this.replyTo = 'replyTo' in options ? options.replyTo : 'TestSender';
    this.endpointName = options.endpointName ?? 'TestEndpoint';
    this.signal = options.signal ?? new AbortController().signal;
    this.routes = options.routes ? new Map(Object.entries(options.routes)) : undefined;
    if ('session' in options) attachStorageSession(this, options.session);
    this.headers = {
      ...options.headers,
      [Headers.MessageId]: this.messageId,
      [Headers.CorrelationId]: this.correlationId,
      [Headers.ConversationId]: this.conversationId,
      [Headers.MessageType]: this.messageType,
      [Headers.ContentType]: 'application/json',
      [Headers.Intent]: 'send',
      [Headers.TimeSent]: new Date().toISOString(),
      ...(this.replyTo !== undefined ? { [Headers.ReplyTo]: this.replyTo } : {}),
    };
  }

  get replyCodes(): number[] {
    return this.replies.flatMap((reply) => (reply.kind === 'code' ? [reply.code] : []));
  }

  repliesOf<T>(definition: MessageDefinition<T>): Array<RecordedReply<T> & { kind: 'message' }> {
    return ofType(
      this.replies.filter((reply) => reply.kind === 'message'),
      definition,
    ) as Array<RecordedReply<T> & { kind: 'message' }>;
  }
  sentOf<T>(definition: MessageDefinition<T>): RecordedSend<T>[] {
    return ofType(this.sent, definition) as RecordedSend<T>[];
  }
  publishedOf<T>(definition: MessageDefinition<T>): RecordedPublish<T>[] {
    return ofType(this.published, definition) as RecordedPublish<T>[];
  }

  reply<T>(definition: MessageDefinition<T>, payload: T, options?: ReplyOptions): Promise<void>;
  reply(code: number, options?: ReplyOptions): Promise<void>;
  async reply(
    definitionOrCode: MessageDefinition | number,
    payloadOrOptions?: unknown,
    maybeOptions?: ReplyOptions,
  ): Promise<void> {
    if (this.replyTo === undefined) {
      throw new UsageError(
        `Cannot reply to '${this.messageType}' (${this.messageId}): it has no reply-to address. It was sent by a send-only endpoint or by a sender that did not set 'tidings.reply-to'.`,
      );
    }
    if (typeof definitionOrCode === 'number') {
      if (!Number.isSafeInteger(definitionOrCode)) {
        throw new UsageError(`A return code must be an integer, got ${definitionOrCode}.`);
      }
      const options = (payloadOrOptions ?? {}) as ReplyOptions;
      checkUserHeaders(options.headers);
      this.replies.push({ kind: 'code', code: definitionOrCode, options });
      return;
    }
    const options = maybeOptions ?? {};
    checkUserHeaders(options.headers);
    this.replies.push({
      kind: 'message',
      definition: definitionOrCode,
      messageType: definitionOrCode.name,
      payload: payloadOrOptions,
      options,
    });
  }

  async send<T>(definition: MessageDefinition<T>, payload: T, options: SendOptions = {}) {
    checkUserHeaders(options.headers);
    let destination = options.to;
    if (destination === undefined && this.routes !== undefined) {
      destination = this.routes.get(definition.name);
      if (destination === undefined) throw new NoRouteError(definition.name);
    }
    this.sent.push(sendRecord(definition, payload, options, destination));
  }

  async publish<T>(definition: MessageDefinition<T>, payload: T, options: PublishOptions = {}) {
    checkUserHeaders(options.headers);
    this.published.push(publishRecord(definition, payload, options));
  }
}

/** A handler context for calling a handler directly: `await handler(payload, ctx)`, then assert on `ctx.replies`. */
export function createTestContext(options: TestContextOptions = {}): TestHandlerContext {
  return new TestContext(options);
}
