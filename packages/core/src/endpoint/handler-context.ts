import { UsageError } from '../errors.js';
import type { MessageDefinition } from '../messages/define-message.js';
import type { TransportOperation } from '../transport/transport.js';
import type { HandlerContext, PublishOptions, ReplyOptions, SendOptions } from './endpoint.js';
import type { OutgoingIntent } from './outgoing.js';

/** What a handler context needs from its endpoint. */
export interface ContextHost {
  readonly endpointName: string;
  readonly inputQueue: string | undefined;
  /** Validates the intent's options, resolves its route and builds the operation. */
  build(intent: OutgoingIntent): TransportOperation | Promise<TransportOperation>;
  resolveRoute(messageType: string, to: string | undefined): string;
  checkOptions(options: SendOptions | PublishOptions | undefined): void;
}

/** What `reply`, `send` and `publish` return once the message is collected: nothing to wait for. */
const collected: Promise<void> = Promise.resolve();

/**
 * The context of one handling attempt. Outgoing messages are collected and dispatched together
 * only after every handler succeeded, so a failed attempt sends nothing.
 */
export class MessageHandlerContext implements HandlerContext {
  readonly outgoing: TransportOperation[] = [];

  constructor(
    private readonly host: ContextHost,
    readonly messageId: string,
    readonly correlationId: string,
    readonly conversationId: string,
    readonly messageType: string,
    readonly headers: Readonly<Record<string, string>>,
    readonly replyTo: string | undefined,
    readonly signal: AbortSignal,
  ) {}

  get endpointName(): string {
    return this.host.endpointName;
  }

  reply<T>(definition: MessageDefinition<T>, payload: T, options?: ReplyOptions): Promise<void>;
  reply(code: number, options?: ReplyOptions): Promise<void>;
  reply(
    definitionOrCode: MessageDefinition | number,
    payloadOrOptions?: unknown,
    maybeOptions?: ReplyOptions,
  ): Promise<void> {
    return this.collect(() =>
      this.replyOperation(definitionOrCode, payloadOrOptions, maybeOptions),
    );
  }

  private replyOperation(
    definitionOrCode: MessageDefinition | number,
    payloadOrOptions: unknown,
    maybeOptions: ReplyOptions | undefined,
  ): TransportOperation | Promise<TransportOperation> {
    const replyTo = this.replyTo;
    if (replyTo === undefined) {
      throw new UsageError(
        `Cannot reply to '${this.messageType}' (${this.messageId}): it has no reply-to address. It was sent by a send-only endpoint or by a sender that did not set 'tidings.reply-to'.`,
      );
    }
    const isCode = typeof definitionOrCode === 'number';
    if (isCode && !Number.isSafeInteger(definitionOrCode)) {
      throw new UsageError(`A return code must be an integer, got ${definitionOrCode}.`);
    }
    const options = (isCode ? payloadOrOptions : maybeOptions) as ReplyOptions | undefined;
    this.host.checkOptions(options);
    return this.host.build({
      intent: 'reply',
      messageType: isCode ? undefined : definitionOrCode.name,
      payload: isCode ? undefined : payloadOrOptions,
      returnCode: isCode ? definitionOrCode : undefined,
      destination: { kind: 'queue', queue: replyTo },
      correlationId: this.correlationId,
      conversationId: this.conversationId,
      replyTo: this.host.inputQueue,
      userHeaders: options?.headers,
    });
  }

  /**
   * Builds an outgoing message now and keeps it for dispatch after the handlers. Not async: a
   * handler that replies or sends pays no frame for it; errors still come as a rejection.
   */
  private collect(build: () => TransportOperation | Promise<TransportOperation>): Promise<void> {
    let operation: TransportOperation | Promise<TransportOperation>;
    try {
      operation = build();
    } catch (error) {
      return Promise.reject(error);
    }
    if (operation instanceof Promise) {
      return operation.then((built) => {
        this.outgoing.push(built);
      });
    }
    this.outgoing.push(operation);
    return collected;
  }

  send<T>(definition: MessageDefinition<T>, payload: T, options?: SendOptions): Promise<void> {
    return this.collect(() => {
      this.host.checkOptions(options);
      const queue = this.host.resolveRoute(definition.name, options?.to);
      return this.host.build({
        intent: 'send',
        messageType: definition.name,
        payload,
        destination: { kind: 'queue', queue },
        messageId: options?.messageId,
        correlationId: this.correlationId,
        conversationId: this.conversationId,
        replyTo: this.host.inputQueue,
        userHeaders: options?.headers,
        delayMs: options?.delayMs,
      });
    });
  }

  publish<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options?: PublishOptions,
  ): Promise<void> {
    return this.collect(() => {
      this.host.checkOptions(options);
      return this.host.build({
        intent: 'publish',
        messageType: definition.name,
        payload,
        destination: { kind: 'publish', messageType: definition.name },
        messageId: options?.messageId,
        correlationId: this.correlationId,
        conversationId: this.conversationId,
        replyTo: this.host.inputQueue,
        userHeaders: options?.headers,
      });
    });
  }
}
