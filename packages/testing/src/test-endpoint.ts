import { randomUUID } from 'node:crypto';
import {
  attachStorageSession,
  type Continuation,
  type ContinuationOptions,
  type ContinuationReply,
  checkUserHeaders,
  type DurableRequestOptions,
  type Endpoint,
  type EndpointState,
  EndpointStateError,
  type EndpointStats,
  type Handler,
  type IncomingMiddleware,
  type MessageDefinition,
  NoRouteError,
  type OutgoingMiddleware,
  type PublishOptions,
  type RegisterOptions,
  type Reply,
  RequestAbortedError,
  type RequestOptions,
  SendOnlyEndpointError,
  type SendOptions,
  type SendResult,
  type TransactionScope,
  UsageError,
} from '@tidings/core';
import type { CannedReply } from './canned-reply.js';
import type { PayloadMatcher } from './payload-matcher.js';
import {
  ofType,
  publishRecord,
  type RecordedPublish,
  type RecordedSend,
  sendRecord,
} from './recorded.js';
import { type RecordedRequest, ScriptedReplies } from './scripted-replies.js';
import type { TestContextOptions, TestHandlerContext } from './test-context.js';
import { sendThrough, TestContinuations } from './test-continuations.js';

export interface TestEndpointOptions {
  /** @default 'TestEndpoint' */
  readonly name?: string;
  /** @default 'test' (undefined when `sendOnly`) */
  readonly instanceId?: string;
  /**
   * Behave as a send-only endpoint: `request`, `register` and `handle` throw `SendOnlyEndpointError`.
   * @default false
   */
  readonly sendOnly?: boolean;
  /**
   * Message type → destination. Given, a send with neither `to` nor a route fails with
   * `NoRouteError` as on a real endpoint; omitted, any send is accepted.
   */
  readonly routes?: Readonly<Record<string, string>>;
  /**
   * The storage session `transaction(fn)` hands `fn` (`scope.session`, `storageSession(scope)`):
   * a stub, or a real client inside a transaction of the test's own.
   */
  readonly session?: unknown;
}

/**
 * An `Endpoint` with no transport, for unit tests of code that sends, publishes and requests:
 * it records what goes out and answers requests with canned replies.
 */
export interface TestEndpoint extends Endpoint {
  /** Answers every request for `definition` with `reply` (registered in order; the first match wins). */
  when<T>(definition: MessageDefinition<T>, reply: CannedReply<T>): this;
  /** Answers requests for `definition` whose payload `matcher` accepts with `reply`. */
  when<T>(
    definition: MessageDefinition<T>,
    matcher: PayloadMatcher<T>,
    reply: CannedReply<T>,
  ): this;
  /** Every message sent, requests included, in order. */
  readonly sent: readonly RecordedSend[];
  /** Every event published, in order. */
  readonly published: readonly RecordedPublish[];
  /** The sends that waited for a reply, in order. */
  readonly requests: readonly RecordedRequest[];
  /** The sends of one message type, payloads typed. */
  sentOf<T>(definition: MessageDefinition<T>): RecordedSend<T>[];
  publishedOf<T>(definition: MessageDefinition<T>): RecordedPublish<T>[];
  requestsOf<T>(definition: MessageDefinition<T>): RecordedRequest<T>[];
  /** Forgets what was recorded; canned replies stay. */
  clear(): void;
  /**
   * Runs a continuation registered here as a reply would: `onReply` with `reply` (a message's
   * payload, or a code) and `state`, on a test context with this endpoint's `session`. Resolves
   * with the context, to assert on what it sent.
   */
  replyTo<E extends MessageDefinition | 'code', S>(
    continuation: Continuation<E, S>,
    reply: ContinuationReply<E>,
    state: S,
    context?: TestContextOptions,
  ): Promise<TestHandlerContext>;
  /** Runs a continuation registered here as its deadline would: `onTimeout` with `state`. */
  timeOut<E extends MessageDefinition | 'code', S>(
    continuation: Continuation<E, S>,
    state: S,
    context?: TestContextOptions,
  ): Promise<TestHandlerContext>;
}

const noop = () => {};

class TestEndpointImpl implements TestEndpoint {
  readonly name: string;
  readonly instanceId: string | undefined;
  readonly sendOnly: boolean;
  readonly inputQueue: string | undefined;
  readonly instanceQueue: string | undefined;
  readonly sent: RecordedSend[] = [];
  readonly published: RecordedPublish[] = [];
  readonly requests: RecordedRequest[] = [];
  private currentState: EndpointState = 'started';
  private readonly replies: ScriptedReplies;
  private readonly routes: ReadonlyMap<string, string> | undefined;
  private readonly session: unknown;
  private readonly continuations: TestContinuations;

  constructor(options: TestEndpointOptions) {
    this.session = options.session;
    this.continuations = new TestContinuations(options.session);
    this.replies = new ScriptedReplies(this.requests);
    this.name = options.name ?? 'TestEndpoint';
    this.sendOnly = options.sendOnly ?? false;
    this.instanceId = this.sendOnly ? undefined : (options.instanceId ?? 'test');
    this.inputQueue = this.sendOnly ? undefined : this.name;
    this.instanceQueue = this.sendOnly ? undefined : `${this.name}.${this.instanceId}`;
    this.routes = options.routes ? new Map(Object.entries(options.routes)) : undefined;
  }

  get state(): EndpointState {
    return this.currentState;
  }

  get stats(): EndpointStats {
    return {
      pendingRequests: this.replies.pending,
      waitingRequests: 0,
      inFlight: 0,
      handled: 0,
      immediateRetries: 0,
      delayedRetries: 0,
      movedToErrorQueue: 0,
      deadLettered: 0,
      unmatchedReplies: 0,
      undeliverableReplies: 0,
      duplicates: 0,
      awaitedDurableRequests: 0,
    };
  }

  continuation<E extends MessageDefinition | 'code', S>(
    name: string,
    options: ContinuationOptions<E, S>,
  ): Continuation<E, S> {
    if (this.sendOnly) throw new SendOnlyEndpointError(this.name, 'run continuations');
    return this.continuations.register(
      name,
      options,
      async (owner, definition, payload, sendOptions) => {
        const correlationId = sendOptions.messageId ?? randomUUID();
        await sendThrough(owner, definition, payload, sendOptions, correlationId);
        return correlationId;
      },
    );
  }

  replyTo<E extends MessageDefinition | 'code', S>(
    continuation: Continuation<E, S>,
    reply: ContinuationReply<E>,
    state: S,
    context?: TestContextOptions,
  ): Promise<TestHandlerContext> {
    return this.continuations.reply(continuation, reply, state, context);
  }

  timeOut<E extends MessageDefinition | 'code', S>(
    continuation: Continuation<E, S>,
    state: S,
    context?: TestContextOptions,
  ): Promise<TestHandlerContext> {
    return this.continuations.timeout(continuation, state, context);
  }

  when<T>(definition: MessageDefinition<T>, reply: CannedReply<T>): this;
  when<T>(
    definition: MessageDefinition<T>,
    matcher: PayloadMatcher<T>,
    reply: CannedReply<T>,
  ): this;
  when(definition: MessageDefinition, ...args: unknown[]): this {
    this.replies.add(definition, args);
    return this;
  }

  sentOf<T>(definition: MessageDefinition<T>): RecordedSend<T>[] {
    return ofType(this.sent, definition) as RecordedSend<T>[];
  }
  publishedOf<T>(definition: MessageDefinition<T>): RecordedPublish<T>[] {
    return ofType(this.published, definition) as RecordedPublish<T>[];
  }
  requestsOf<T>(definition: MessageDefinition<T>): RecordedRequest<T>[] {
    return ofType(this.requests, definition) as RecordedRequest<T>[];
  }
  clear(): void {
    this.sent.length = 0;
    this.published.length = 0;
    this.requests.length = 0;
  }

  // A test endpoint receives nothing: handlers and middleware are accepted and never run.
  // Test handlers by calling them with createTestContext().
  handle<T>(_definition: MessageDefinition<T>, _handler: Handler<T>): this {
    if (this.sendOnly) throw new SendOnlyEndpointError(this.name, 'handle messages');
    return this;
  }
  useIncoming(_middleware: IncomingMiddleware): this {
    return this;
  }
  useOutgoing(_middleware: OutgoingMiddleware): this {
    return this;
  }

  /** It starts started: code under test usually gets an endpoint that is already running. */
  async start(): Promise<void> {
    if (this.currentState === 'stopped') {
      throw new EndpointStateError(`Endpoint '${this.name}' is stopped; create a new one.`);
    }
    this.currentState = 'started';
  }

  async stop(): Promise<void> {
    this.currentState = 'stopped';
  }

  send<T>(definition: MessageDefinition<T>, payload: T, options: SendOptions = {}): SendResult {
    let record: RecordedSend<T>;
    try {
      record = this.recordSend(definition, payload, options);
    } catch (error) {
      const failed = Promise.reject(error) as Promise<void>;
      failed.catch(noop);
      return Object.assign(failed, {
        register: <R>(): Promise<Awaited<R>> => failed as unknown as Promise<Awaited<R>>,
      });
    }
    // As on a real endpoint, register() must come in the same expression, before dispatch.
    let dispatched = false;
    let registered = false;
    const sent = Promise.resolve().then(() => {
      dispatched = true;
    });
    return Object.assign(sent, {
      register: <S, R>(
        callback: (reply: Reply, state: S) => R | Promise<R>,
        state?: S,
        registerOptions: RegisterOptions = {},
      ): Promise<Awaited<R>> => {
        if (this.sendOnly) throw new SendOnlyEndpointError(this.name, 'receive replies (register)');
        if (dispatched || registered) {
          throw new UsageError(
            'register() must be called on the result of send() in the same expression, before the message is dispatched, e.g. endpoint.send(Msg, data).register(cb).',
          );
        }
        registered = true;
        const expect = registerOptions.expect;
        return this.replies
          .answer(record, expect)
          .then(async ({ reply, value }): Promise<Awaited<R>> => {
            // The callback sees the body as the expected definition's schema parsed it.
            const seen =
              reply.kind === 'message' && typeof expect === 'object'
                ? { ...reply, body: value }
                : reply;
            return await callback(seen, state as S);
          });
      },
    });
  }

  async publish<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options: PublishOptions = {},
  ): Promise<void> {
    this.assertCanSend();
    checkUserHeaders(options.headers);
    this.published.push(publishRecord(definition, payload, options));
  }

  request<T, R>(
    definition: MessageDefinition<T>,
    payload: T,
    options: RequestOptions<MessageDefinition<R>> & { readonly expect: MessageDefinition<R> },
  ): Promise<R>;
  request<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options: RequestOptions<'code'> & { readonly expect: 'code' },
  ): Promise<number>;
  request<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options?: RequestOptions<undefined>,
  ): Promise<Reply>;
  request(
    definition: MessageDefinition,
    payload: unknown,
    options: RequestOptions<MessageDefinition | 'code' | undefined> = {},
  ): Promise<unknown> {
    if (this.sendOnly) throw new SendOnlyEndpointError(this.name, 'receive replies to requests');
    if ('continueWith' in options) {
      return this.durableRequest(
        definition,
        payload,
        options as unknown as DurableRequestOptions<MessageDefinition | 'code', unknown>,
      );
    }
    const { expect, timeoutMs: _timeoutMs, signal, ...sendOptions } = options;
    if (signal?.aborted) {
      // Aborted before the call: nothing is sent, as on a real endpoint.
      return Promise.reject(new RequestAbortedError(definition.name, signal.reason));
    }
    let record: RecordedSend;
    try {
      record = this.recordSend(definition, payload, sendOptions);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.replies.answer(record, expect).then(({ value }) => value);
  }

  /**
   * A durable request: recorded and answered with a canned reply like any request, then the
   * continuation's `onReply` runs with it (on a context with this endpoint's `session`) before the
   * promise resolves, as on a real endpoint.
   */
  private async durableRequest(
    definition: MessageDefinition,
    payload: unknown,
    options: DurableRequestOptions<MessageDefinition | 'code', unknown>,
  ): Promise<unknown> {
    const {
      continueWith,
      state,
      timeoutMs: _timeoutMs,
      signal,
      expect: _expect,
      ...sendOptions
    } = options;
    if (signal?.aborted) throw new RequestAbortedError(definition.name, signal.reason);
    const record = this.recordSend(definition, payload, sendOptions);
    const expect = continueWith.reply;
    const { value } = await this.replies.answer(record, expect);
    await this.continuations.reply(continueWith, value as never, state, {
      correlationId: record.messageId,
    });
    return value;
  }

  /**
   * Runs `fn` with a scope whose sends and publishes are recorded once `fn` returns (the commit);
   * when it throws, they are dropped, as a rolled-back transaction sends nothing.
   */
  async transaction<R>(fn: (scope: TransactionScope) => R | Promise<R>): Promise<R> {
    this.assertCanSend();
    const sent: RecordedSend[] = [];
    const published: RecordedPublish[] = [];
    const scope: TransactionScope = {
      session: this.session,
      send: async (definition, payload, options = {}) => {
        sent.push(this.makeSendRecord(definition, payload, options));
      },
      publish: async (definition, payload, options = {}) => {
        checkUserHeaders(options.headers);
        published.push(publishRecord(definition, payload, options));
      },
    };
    attachStorageSession(scope, this.session);
    const result = await fn(scope);
    this.sent.push(...sent);
    this.published.push(...published);
    return result;
  }

  private recordSend<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options: SendOptions,
  ): RecordedSend<T> {
    const record = this.makeSendRecord(definition, payload, options);
    this.sent.push(record);
    return record;
  }

  private makeSendRecord<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options: SendOptions,
  ): RecordedSend<T> {
    this.assertCanSend();
    checkUserHeaders(options.headers);
    let destination = options.to;
    if (destination === undefined && this.routes !== undefined) {
      destination = this.routes.get(definition.name);
      if (destination === undefined) throw new NoRouteError(definition.name);
    }
    return sendRecord(definition, payload, options, destination);
  }

  private assertCanSend(): void {
    if (this.currentState === 'stopped') {
      throw new EndpointStateError(`Endpoint '${this.name}' is stopped: do not send after stop().`);
    }
  }
}

/**
 * Creates a test endpoint: pass it where your code expects an `Endpoint`, script replies with
 * `when`, then assert on `sent`, `published` and `requests`.
 */
export function createTestEndpoint(options: TestEndpointOptions = {}): TestEndpoint {
  return new TestEndpointImpl(options);
}
