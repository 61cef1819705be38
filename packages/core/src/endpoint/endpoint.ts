import type { Reply } from '../callbacks/reply.js';
import type {
  Continuation,
  ContinuationOptions,
  ContinuationReply,
  DurableRequestOptions,
} from '../durable-requests/continuation.js';
import type { MessageDefinition } from '../messages/define-message.js';
import type { TransactionScope } from '../persistence/transaction-scope.js';
import type { IncomingMiddleware, OutgoingMiddleware } from '../pipeline/middleware.js';

export interface SendOptions {
  /** The destination endpoint (its queue); overrides `routes`. */
  readonly to?: string;
  /** Extra headers. Names starting with `tidings.` are reserved. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Use this message id instead of a new one (e.g. a business key, for idempotent receivers). */
  readonly messageId?: string;
  /** Deliver no earlier than this many milliseconds from now (transport must support delays). */
  readonly delayMs?: number;
  /**
   * Send without durability, for a message whose loss costs no more than its absence (a query, a
   * refresh): the transport may skip the disk and the broker's confirm (RabbitMQ: transient,
   * unconfirmed). Lost if the broker restarts or the connection drops before delivery; nothing
   * tells the sender. See docs/concepts.md, "Durability".
   * @default false
   */
  readonly express?: boolean;
}

export interface PublishOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly messageId?: string;
  /** Publish without durability; see `SendOptions.express`. @default false */
  readonly express?: boolean;
}

export interface ReplyOptions {
  readonly headers?: Readonly<Record<string, string>>;
}

export interface CallbackOptions {
  /**
   * Reject with `RequestTimeoutError` if no reply arrives in time.
   * @default the endpoint's `requestTimeoutMs` (30 s)
   */
  readonly timeoutMs?: number;
  /** Cancels the wait (`RequestAbortedError`). Aborted before the call: nothing is sent. */
  readonly signal?: AbortSignal;
}

export interface RequestOptions<E> extends SendOptions, CallbackOptions {
  /** What the reply must be: a message type, `'code'` for a return code; omitted, any reply. */
  readonly expect?: E;
}

export interface RegisterOptions extends CallbackOptions {
  readonly expect?: MessageDefinition | 'code';
}

/** The result of `send`: a promise that resolves once the transport has the message, plus the callback form. */
export interface SendResult extends Promise<void> {
  /**
   * Waits for the first reply to this message and calls `callback` with it. Call it in the same
   * expression as `send` (before the message is dispatched), e.g. `send(...).register(cb, state)`.
   * Resolves with the callback's result; rejects on timeout, abort, a mismatched reply or a failed send.
   */
  register<S, R>(
    callback: (reply: Reply, state: S) => R | Promise<R>,
    state?: S,
    options?: RegisterOptions,
  ): Promise<Awaited<R>>;
}

/** What a handler gets beside the payload. */
export interface HandlerContext {
  readonly messageId: string;
  readonly correlationId: string;
  readonly conversationId: string;
  readonly messageType: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Where replies to this message go; undefined if the sender cannot receive replies. */
  readonly replyTo: string | undefined;
  /** The endpoint handling the message. */
  readonly endpointName: string;
  /** Aborted when the endpoint's stop deadline passes: wrap up, the message will be received again. */
  readonly signal: AbortSignal;
  /**
   * Replies with a message. Sent when all handlers for this message have succeeded. Like `send`
   * and `publish`, it belongs to the attempt awaited or not: one that cannot be built (no
   * reply-to, too large) fails the attempt unless the handler awaited or caught the promise.
   */
  reply<T>(definition: MessageDefinition<T>, payload: T, options?: ReplyOptions): Promise<void>;
  /** Replies with a return code (an integer, e.g. an enum value); it travels as a header, no body. */
  reply(code: number, options?: ReplyOptions): Promise<void>;
  /**
   * Sends a message; it leaves when all handlers for this message have succeeded. Like `reply`
   * and `publish`, it belongs to the attempt awaited or not, and so does its failure (no route,
   * too large, not serializable), which fails the attempt, unless the handler attaches a rejection
   * handler to the very promise returned: `await` (in `try` or not), `.catch`, `.then(f, g)`,
   * `Promise.all`, `allSettled` and `race` do. `.then(f)` alone and `.finally(f)` do not: the
   * attempt fails, and so does a chain that catches only at its end
   * (`ctx.send(A).then(f).catch(g)`: `g` sees the error, the attempt still fails). A `send`,
   * `reply` or `publish` made once the attempt has finished, as one in a callback of a send the
   * handler did not await or on a timer can be, is not sent: it rejects with `UsageError` and is
   * logged as an error. Await every one in the handler, or return its promise.
   */
  send<T>(definition: MessageDefinition<T>, payload: T, options?: SendOptions): Promise<void>;
  /** Publishes an event; it leaves when all handlers for this message have succeeded. */
  publish<T>(definition: MessageDefinition<T>, payload: T, options?: PublishOptions): Promise<void>;
}

export type Handler<T> = (payload: T, context: HandlerContext) => void | Promise<void>;

export interface EndpointStats {
  /** Requests awaiting their reply. Returns to zero after every reply, timeout and abort. */
  readonly pendingRequests: number;
  /** Durable requests this process awaits (`request` with `continueWith`); back to zero as each settles. */
  readonly awaitedDurableRequests: number;
  /** Requests waiting for a slot because `maxPendingRequests` is reached. */
  readonly waitingRequests: number;
  /** Messages being handled right now. */
  readonly inFlight: number;
  readonly handled: number;
  readonly immediateRetries: number;
  readonly delayedRetries: number;
  readonly movedToErrorQueue: number;
  /** Unreadable messages settled into the broker's own dead-letter queue (`nativeDeadLetter`). */
  readonly deadLettered: number;
  /** Replies with neither a pending request nor a handler: discarded with a warning. */
  readonly unmatchedReplies: number;
  /**
   * Replies a handler sent to a queue that no longer exists (a requester that stopped, its instance
   * queue expired): dropped with a warning, while the handler's other messages still went.
   */
  readonly undeliverableReplies: number;
  /**
   * Messages this endpoint's inbox had already handled (with a `persistence`): acknowledged
   * without running handlers, their record's messages sent again if they had not left.
   */
  readonly duplicates: number;
}

export type EndpointState = 'created' | 'starting' | 'started' | 'stopping' | 'stopped';

export interface Endpoint {
  readonly name: string;
  /** This instance's id; undefined for a send-only endpoint. */
  readonly instanceId: string | undefined;
  readonly sendOnly: boolean;
  /** The shared queue of the endpoint; undefined for a send-only endpoint. */
  readonly inputQueue: string | undefined;
  /** This instance's own queue, where replies to its requests arrive. */
  readonly instanceQueue: string | undefined;
  readonly state: EndpointState;
  readonly stats: EndpointStats;

  /** Registers a handler; several for one type run in registration order. Before `start` only. */
  handle<T>(definition: MessageDefinition<T>, handler: Handler<T>): this;
  /**
   * Registers a continuation under a stable name, for durable requests: it runs exactly once with
   * the reply or at the deadline, on whichever instance receives it, in a transaction of the
   * endpoint's persistence. Before `start` only. See docs/adr/0015-durable-requests.md.
   */
  continuation<E extends MessageDefinition | 'code', S>(
    name: string,
    options: ContinuationOptions<E, S>,
  ): Continuation<E, S>;
  /** Adds middleware around the handlers of every incoming message. Before `start` only. */
  useIncoming(middleware: IncomingMiddleware): this;
  /** Adds middleware for every outgoing message, before serialization. Before `start` only. */
  useOutgoing(middleware: OutgoingMiddleware): this;

  /**
   * Connects the transport, creates queues and subscriptions, starts receiving. Called again while
   * a start is under way, it returns that start's promise. Once started, or once `stop()` was
   * called, it rejects with `EndpointStateError`. A start that failed may be tried again.
   */
  start(): Promise<void>;
  /**
   * Stops receiving, lets in-flight handlers finish (up to `stopTimeoutMs`; later ones are
   * abandoned and received again), rejects pending requests with `EndpointStoppedError`, disconnects.
   * Called during a start, it waits for the start to end, then stops. Every call gets the same promise.
   */
  stop(): Promise<void>;

  send<T>(definition: MessageDefinition<T>, payload: T, options?: SendOptions): SendResult;
  publish<T>(definition: MessageDefinition<T>, payload: T, options?: PublishOptions): Promise<void>;
  /**
   * A durable request: stores its record and sends it in one transaction, then waits. The
   * continuation runs once with the reply (or at the deadline) wherever the reply lands; this
   * promise resolves with the reply once the continuation committed, if this process still waits.
   */
  request<T, E extends MessageDefinition | 'code', S>(
    definition: MessageDefinition<T>,
    payload: T,
    options: DurableRequestOptions<E, S>,
  ): Promise<ContinuationReply<E>>;
  /** Sends and waits for the first reply, which must be a message of type `R`. */
  request<T, R>(
    definition: MessageDefinition<T>,
    payload: T,
    options: RequestOptions<MessageDefinition<R>> & { readonly expect: MessageDefinition<R> },
  ): Promise<R>;
  /** Sends and waits for the first reply, which must be a return code. */
  request<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options: RequestOptions<'code'> & { readonly expect: 'code' },
  ): Promise<number>;
  /** Sends and waits for the first reply of any kind. */
  request<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options?: RequestOptions<undefined>,
  ): Promise<Reply>;
  /**
   * Runs `fn` in a transaction of the endpoint's `persistence`: the caller's own writes (on
   * `scope.session`) and what it sends through `scope.send` / `scope.publish` commit together; the
   * messages leave after the commit (or, after a crash, from the outbox dispatcher). Resolves with
   * what `fn` returns once committed; `fn` throwing rolls everything back.
   * @throws ConfigurationError when the endpoint has no `persistence`
   */
  transaction<R>(fn: (scope: TransactionScope) => R | Promise<R>): Promise<R>;
}
