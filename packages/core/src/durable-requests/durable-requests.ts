import type { HandlerContext, SendOptions } from '../endpoint/endpoint.js';
import type { HandlerRegistration } from '../endpoint/message-processor.js';
import type { BuiltOperation, OutgoingIntent } from '../endpoint/outgoing.js';
import {
  ConfigurationError,
  ContinuationFailedError,
  EndpointStoppedError,
  ReplyMismatchError,
  RequestAbortedError,
  RequestTimeoutError,
  SendOnlyEndpointError,
  UsageError,
} from '../errors.js';
import type { EndpointInstrumentation } from '../instrumentation/instrumentation.js';
import type { Logger } from '../logging/logger.js';
import { type LongTimer, setLongTimeout } from '../long-timer.js';
import type { MessageDefinition } from '../messages/define-message.js';
import { validatePayload } from '../messages/validate.js';
import type { DurableRequestRecord, DurableRequestStore } from '../persistence/persistence.js';
import { storageSession } from '../persistence/storage-session.js';
import type { TransactionScope } from '../persistence/transaction-scope.js';
import { remoteFailure } from '../recoverability/fault-reply.js';
import { readString, thrownTypeName } from '../thrown-value.js';
import type {
  IncomingTransportMessage,
  MessageOutcome,
  TransportEndpoint,
  TransportOperation,
} from '../transport/transport.js';
import { errorMessage, newId } from '../util.js';
import type {
  Continuation,
  ContinuationOptions,
  DurableRequestOptions,
  DurableSendOptions,
} from './continuation.js';
import {
  ContinuationDone,
  type ContinuationOutcome,
  DurableRequestTimeout,
} from './durable-messages.js';

/** Past the deadline, how long an `await` waits to hear of `onTimeout` before it gives up. */
export const awaitGraceMs = 10_000;

/**
 * The endpoint's slots of `maxPendingRequests` (its callback registry's): a durable request's
 * `await` holds one, as a plain request's callback does.
 */
export interface RequestSlots {
  /** Reserves a slot, or waits for one (rejecting on `signal` or after `timeoutMs`). */
  acquire(messageType: string, signal?: AbortSignal, timeoutMs?: number): Promise<void> | undefined;
  /** Gives a reserved slot back. */
  release(): void;
}

/** What durable requests need from their endpoint. */
export interface DurableRequestsHost {
  readonly endpointName: string;
  readonly instanceId: string | undefined;
  readonly inputQueue: string | undefined;
  readonly sendOnly: boolean;
  readonly canDelay: boolean;
  /** `created`, `starting`, `started`, `stopping` or `stopped`. */
  readonly state: string;
  readonly registry: RequestSlots;
  /** Set at start when the endpoint has an `instrumentation`. */
  readonly instrumentation: EndpointInstrumentation | undefined;
  readonly transportEndpoint: TransportEndpoint;
  readonly options: { readonly logger: Logger; readonly requestTimeoutMs: number };
  /** The endpoint's persistence's records; undefined without a persistence or support for them. */
  readonly durableRequestStore: DurableRequestStore | undefined;
  build(intent: OutgoingIntent): TransportOperation | Promise<BuiltOperation>;
  resolveRoute(messageType: string, to: string | undefined): string;
  checkOptions(options: SendOptions | undefined): void;
  transaction<R>(fn: (scope: TransactionScope) => R | Promise<R>): Promise<R>;
}

/** A received message as the processor parsed it: what durable requests read of it. */
export interface ParsedForDurable {
  readonly raw: IncomingTransportMessage;
  readonly messageId: string;
  readonly messageType: string | undefined;
  readonly returnCode: number | undefined;
  readonly correlationId: string;
  readonly intent: string | undefined;
  readonly isReply: boolean;
  readonly payload: unknown;
  readonly deserializationError: unknown;
}

/** Something that can take outgoing messages into a transaction: a handler context or a scope. */
interface Collector {
  collectOperation(build: () => TransportOperation | Promise<BuiltOperation>): Promise<void>;
  readonly conversationId?: string;
}

type AnyContinuation = ContinuationOptions<MessageDefinition | 'code', unknown>;

interface Waiter {
  readonly continuation: string;
  readonly messageType: string;
  readonly timeoutMs: number;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** A durable `request` as asked, checked, before it has a slot. */
interface AskedRequest {
  readonly name: string;
  readonly definition: MessageDefinition;
  readonly payload: unknown;
  readonly options: DurableRequestOptions<MessageDefinition | 'code', unknown>;
  readonly correlationId: string;
  readonly timeoutMs: number;
}

/** The last handling attempt of a durable reply or timeout: what it took and how it ended. */
type Attempt =
  | {
      readonly ok: true;
      readonly record: DurableRequestRecord;
      readonly outcome: ContinuationOutcome;
      readonly error?: Error;
    }
  | { readonly ok: false; readonly record: DurableRequestRecord; readonly error: unknown }
  | undefined;

/**
 * An endpoint's durable requests: its continuations, the records they need, the `await`s of
 * this process. See docs/adr/0015-durable-requests.md.
 */
export class EndpointDurableRequests {
  private readonly continuations = new Map<string, AnyContinuation>();
  private readonly waiters = new Map<string, Waiter>();

  constructor(private readonly host: DurableRequestsHost) {}

  /** Continuations registered: with none, nothing here looks at a message. */
  get enabled(): boolean {
    return this.continuations.size > 0;
  }

  /** `await`s of durable requests in this process. Returns to zero after each settles. */
  get awaiting(): number {
    return this.waiters.size;
  }

  register<E extends MessageDefinition | 'code', S>(
    name: string,
    options: ContinuationOptions<E, S>,
  ): Continuation<E, S> {
    if (this.host.sendOnly)
      throw new SendOnlyEndpointError(this.host.endpointName, 'run continuations');
    if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,200}$/.test(name)) {
      throw new UsageError(
        `Invalid continuation name ${JSON.stringify(name)}: use 1-200 letters, digits, '.', '_', ':' or '-'. Keep it stable: stored requests name it.`,
      );
    }
    if (this.continuations.has(name)) {
      throw new UsageError(`A continuation named '${name}' is registered already.`);
    }
    if (typeof options?.onReply !== 'function') {
      throw new UsageError(`The continuation '${name}' needs an onReply function.`);
    }
    const reply = options.reply;
    if (reply !== 'code' && typeof reply?.name !== 'string') {
      throw new UsageError(
        `The continuation '${name}' needs reply: a message definition or 'code'.`,
      );
    }
    this.continuations.set(name, options as unknown as AnyContinuation);
    return {
      name,
      reply,
      send: (owner, definition, payload, sendOptions) =>
        this.send(name, owner, definition, payload, sendOptions),
    };
  }

  /** At start, once the persistence is open: refuses what cannot hold the guarantee. */
  checkStart(transportName: string): void {
    if (!this.enabled) return;
    if (this.host.durableRequestStore === undefined) {
      throw new ConfigurationError(
        `Endpoint '${this.host.endpointName}' registers continuations but has no persistence that stores durable requests: pass one (e.g. @tidings/persistence-postgres) to createEndpoint({ persistence }).`,
      );
    }
    if (!this.host.canDelay) {
      throw new ConfigurationError(
        `Transport '${transportName}' cannot delay delivery, and durable requests need it for their deadlines: use a transport with delayed delivery (docs/transports.md).`,
      );
    }
  }

  /** At stop: no reply reaches this process any more; the continuations still run elsewhere. */
  rejectAll(): void {
    for (const [correlationId, waiter] of this.waiters) {
      this.waiters.delete(correlationId);
      waiter.reject(new EndpointStoppedError(this.host.endpointName));
    }
  }

  /**
   * `endpoint.request(..., { continueWith })`: takes a slot of `maxPendingRequests` (waiting for
   * one like a plain request), stores and sends in a transaction, then awaits. With an
   * instrumentation, the wait is a `request` span, the request and its deadline sent within it.
   */
  request(
    definition: MessageDefinition,
    payload: unknown,
    options: DurableRequestOptions<MessageDefinition | 'code', unknown>,
  ): Promise<unknown> {
    if (this.host.sendOnly) {
      throw new SendOnlyEndpointError(this.host.endpointName, 'receive replies to requests');
    }
    const continuation = options.continueWith;
    const name = continuation?.name;
    if (name === undefined || this.continuations.get(name) === undefined) {
      return Promise.reject(
        new UsageError(
          `continueWith must be a continuation registered on endpoint '${this.host.endpointName}'.`,
        ),
      );
    }
    if (options.expect !== undefined && options.expect !== continuation.reply) {
      return Promise.reject(
        new UsageError(`expect must be the continuation '${name}''s reply, or left out.`),
      );
    }
    const signal = options.signal;
    if (signal?.aborted)
      return Promise.reject(new RequestAbortedError(definition.name, signal.reason));
    const timeoutMs = options.timeoutMs ?? this.host.options.requestTimeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      return Promise.reject(
        new UsageError(`timeoutMs must be a positive whole number, got ${timeoutMs}.`),
      );
    }
    let destination: string;
    try {
      destination = this.host.resolveRoute(definition.name, options.to);
    } catch (error) {
      return Promise.reject(error);
    }
    const correlationId = options.messageId ?? newId();
    const asked: AskedRequest = { name, definition, payload, options, correlationId, timeoutMs };
    const observer = this.host.instrumentation?.request(
      definition.name,
      destination,
      correlationId,
    );
    if (observer === undefined) return this.withSlot(asked);
    const result = observer.run(() => this.withSlot(asked));
    result.then(
      () => observer.settled(),
      (error: unknown) => observer.settled(error),
    );
    return result;
  }

  /**
   * Runs the request once it holds a slot: at once, or after waiting for one, which counts
   * against its timeout. A wait that times out or is aborted has written and sent nothing.
   */
  private withSlot(asked: AskedRequest): Promise<unknown> {
    const { definition, options } = asked;
    const askedAt = performance.now();
    const waiting = this.host.registry.acquire(definition.name, options.signal, asked.timeoutMs);
    if (waiting === undefined) return this.sendAndAwait(asked, asked.timeoutMs);
    return waiting.then(() =>
      this.sendAndAwait(
        asked,
        Math.max(1, Math.round(asked.timeoutMs - (performance.now() - askedAt))),
      ),
    );
  }

  /** Holding a slot: registers the waiter, then stores and sends in a transaction of its own. */
  private sendAndAwait(asked: AskedRequest, timeoutMs: number): Promise<unknown> {
    const { name, definition, options, correlationId } = asked;
    const signal = options.signal;
    // Stopping (a wait for a slot ends at stop), or aborted while it waited: nothing is sent.
    if (this.host.state === 'stopping' || this.host.state === 'stopped') {
      this.host.registry.release();
      return Promise.reject(new EndpointStoppedError(this.host.endpointName));
    }
    if (signal?.aborted) {
      this.host.registry.release();
      return Promise.reject(new RequestAbortedError(definition.name, signal.reason));
    }
    const result = new Promise<unknown>((resolve, reject) => {
      let timer: LongTimer | undefined;
      let holding = true;
      const onAbort = () => {
        if (this.waiters.get(correlationId) !== waiter) return;
        this.waiters.delete(correlationId);
        waiter.reject(
          new RequestAbortedError(
            definition.name,
            signal?.reason,
            'the continuation still runs when the reply comes',
          ),
        );
      };
      // Every way out of the wait comes here once: the slot goes back as the waiter leaves.
      const done = () => {
        timer?.clear();
        signal?.removeEventListener('abort', onAbort);
        if (holding) {
          holding = false;
          this.host.registry.release();
        }
      };
      const waiter: Waiter = {
        continuation: name,
        messageType: definition.name,
        timeoutMs: asked.timeoutMs,
        resolve: (value) => {
          done();
          resolve(value);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      // Before the commit: the reply can come as soon as the message leaves.
      this.waiters.set(correlationId, waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      // A safety net only: the deadline itself is the durable timeout message.
      timer = setLongTimeout(() => {
        if (this.waiters.get(correlationId) !== waiter) return;
        this.waiters.delete(correlationId);
        waiter.reject(new RequestTimeoutError(definition.name, asked.timeoutMs, correlationId));
      }, timeoutMs + awaitGraceMs);
    });
    this.host
      .transaction((scope) =>
        this.send(name, scope, definition, asked.payload, {
          ...options,
          messageId: correlationId,
          timeoutMs,
        }),
      )
      .catch((error: unknown) => {
        const waiter = this.waiters.get(correlationId);
        this.waiters.delete(correlationId);
        waiter?.reject(error);
      });
    return result;
  }

  /** Adds a durable request (record, message, deadline) to a handler's or a scope's transaction. */
  private async send(
    name: string,
    owner: object,
    definition: MessageDefinition,
    payload: unknown,
    options: DurableSendOptions<unknown>,
  ): Promise<string> {
    const store = this.host.durableRequestStore;
    const collector = owner as Partial<Collector>;
    if (store === undefined || typeof collector.collectOperation !== 'function') {
      throw new UsageError(
        'A durable request is sent inside a handler (its ctx) or endpoint.transaction (its scope), on an endpoint whose persistence stores durable requests.',
      );
    }
    const continuation = this.continuations.get(name) as AnyContinuation;
    const timeoutMs = options.timeoutMs ?? this.host.options.requestTimeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      throw new UsageError(`timeoutMs must be a positive whole number, got ${timeoutMs}.`);
    }
    this.host.checkOptions({ ...options, delayMs: timeoutMs });
    const state = await this.checkState(name, continuation, options.state);
    const session = storageSession(owner);
    const correlationId = options.messageId ?? newId();
    const inputQueue = this.host.inputQueue as string;
    const conversationId = collector.conversationId;
    const request: OutgoingIntent = {
      intent: 'send',
      messageType: definition.name,
      payload,
      destination: { kind: 'queue', queue: this.host.resolveRoute(definition.name, options.to) },
      messageId: correlationId,
      correlationId,
      conversationId,
      // The shared queue, not this instance's: any instance can run the continuation, so the
      // reply is handled even if this one is gone for good.
      replyTo: inputQueue,
      userHeaders: options.headers,
    };
    const deadline: OutgoingIntent = {
      intent: 'send',
      messageType: DurableRequestTimeout.name,
      payload: { correlationId },
      destination: { kind: 'queue', queue: inputQueue },
      correlationId,
      conversationId,
      delayMs: timeoutMs,
    };
    const saving = store.save(session, {
      correlationId,
      continuation: name,
      state: JSON.stringify(state ?? null),
      deadline: Date.now() + timeoutMs,
      requester: this.host.instanceId as string,
    });
    // Built while the record's insert is on its way (CPU beside a round trip to the store), and
    // collected only once it is in: no message of a request whose record failed.
    let built: Array<TransportOperation | Promise<BuiltOperation>>;
    try {
      built = [this.host.build(request), this.host.build(deadline)];
    } catch (error) {
      await saving.catch(() => {});
      throw error;
    }
    // A build that fails after a failed save is not left unhandled; collecting it reports it.
    for (const operation of built) if (operation instanceof Promise) operation.catch(() => {});
    await saving;
    const collecting = collector as Collector;
    await Promise.all(built.map((operation) => collecting.collectOperation(() => operation)));
    return correlationId;
  }

  private async checkState(name: string, continuation: AnyContinuation, state: unknown) {
    if (continuation.state === undefined) return state;
    return validatePayload(
      { name: `continuation '${name}' state`, schema: continuation.state },
      state,
    );
  }

  /**
   * The processor's hook, for a message no in-memory callback took: a durable request's reply,
   * deadline or outcome. Undefined: not one, the message goes to its handlers as ever.
   */
  route(
    parsed: ParsedForDurable,
    handle: (
      registration: HandlerRegistration,
      payload: unknown,
    ) => MessageOutcome | Promise<MessageOutcome>,
    fallback: () => MessageOutcome | Promise<MessageOutcome>,
    unmatched: (context: HandlerContext) => void | Promise<void>,
  ): MessageOutcome | Promise<MessageOutcome> | undefined {
    if (parsed.messageType === ContinuationDone.name && parsed.isReply) {
      this.told(parsed);
      return 'complete';
    }
    if (!this.enabled) return undefined;
    if (parsed.messageType === DurableRequestTimeout.name && !parsed.isReply) {
      return this.handleTimeout(parsed, handle);
    }
    if (!parsed.isReply) return undefined;
    // A request this process awaits has (or had) a record: no read needed. If the deadline took
    // it meanwhile, the reply's transaction finds nothing and treats it as unmatched.
    if (this.waiters.has(parsed.correlationId)) return this.handleReply(parsed, handle, unmatched);
    const store = this.host.durableRequestStore as DurableRequestStore;
    // Only replies pay this read: a reply to a durable request has a record until it is handled.
    return store.find(parsed.correlationId).then((record) => {
      if (record === undefined) return fallback();
      return this.handleReply(parsed, handle, unmatched);
    });
  }

  private handleReply(
    parsed: ParsedForDurable,
    handle: (
      registration: HandlerRegistration,
      payload: unknown,
    ) => MessageOutcome | Promise<MessageOutcome>,
    unmatched: (context: HandlerContext) => void | Promise<void>,
  ): Promise<MessageOutcome> {
    let attempt: Attempt;
    const definition = { name: parsed.messageType ?? 'tidings.ReturnCode', schema: undefined };
    const registration: HandlerRegistration = {
      definition,
      handlers: [
        async (_payload, context) => {
          attempt = undefined;
          const store = this.host.durableRequestStore as DurableRequestStore;
          const record = await store.take(storageSession(context), parsed.correlationId);
          // The deadline took it between the read and this transaction: an unmatched reply,
          // handled (or counted) in this very transaction.
          if (record === undefined) return unmatched(context);
          const continuation = this.continuationNamed(record.continuation);
          try {
            const state = await this.readState(record, continuation);
            const reply = await this.readReply(parsed, continuation.reply);
            if (reply.ok) {
              await continuation.onReply(reply.value as never, state, context);
              attempt = { ok: true, record, outcome: { kind: 'reply', value: reply.value } };
            } else {
              if (continuation.onFailure === undefined) throw reply.error;
              await continuation.onFailure(reply.error, state, context);
              attempt = {
                ok: true,
                record,
                outcome: {
                  kind: 'failed',
                  exceptionType: thrownTypeName(reply.error),
                  ...codeOf(reply.error),
                },
                error: reply.error,
              };
            }
          } catch (error) {
            attempt = { ok: false, record, error };
            throw error;
          }
        },
      ],
    };
    return Promise.resolve(handle(registration, parsed.payload)).then((outcome) => {
      if (outcome === 'complete') this.settle(attempt);
      return outcome;
    });
  }

  private handleTimeout(
    parsed: ParsedForDurable,
    handle: (
      registration: HandlerRegistration,
      payload: unknown,
    ) => MessageOutcome | Promise<MessageOutcome>,
  ): Promise<MessageOutcome> {
    let attempt: Attempt;
    const registration: HandlerRegistration = {
      definition: DurableRequestTimeout as MessageDefinition,
      handlers: [
        async (_payload, context) => {
          attempt = undefined;
          const store = this.host.durableRequestStore as DurableRequestStore;
          // The correlation id header, not the body: the body is only for people reading queues.
          const record = await store.take(storageSession(context), parsed.correlationId);
          if (record === undefined) return; // the reply came first
          const continuation = this.continuationNamed(record.continuation);
          try {
            const state = await this.readState(record, continuation);
            if (continuation.onTimeout !== undefined) await continuation.onTimeout(state, context);
            else {
              this.host.options.logger.info(
                'A durable request timed out; its continuation has no onTimeout',
                {
                  continuation: record.continuation,
                  correlationId: record.correlationId,
                },
              );
            }
            attempt = { ok: true, record, outcome: { kind: 'timeout' } };
          } catch (error) {
            attempt = { ok: false, record, error };
            throw error;
          }
        },
      ],
    };
    return Promise.resolve(handle(registration, parsed.payload)).then((outcome) => {
      if (outcome === 'complete') this.settle(attempt);
      return outcome;
    });
  }

  /** A stored record names a continuation that every instance must register. */
  private continuationNamed(name: string): AnyContinuation {
    const continuation = this.continuations.get(name);
    if (continuation === undefined) {
      throw new ConfigurationError(
        `No continuation named '${name}' is registered on endpoint '${this.host.endpointName}': register it on every instance (a stored durable request names it).`,
      );
    }
    return continuation;
  }

  private async readState(record: DurableRequestRecord, continuation: AnyContinuation) {
    const state: unknown = JSON.parse(record.state);
    return this.checkState(record.continuation, continuation, state);
  }

  /** The reply as the continuation expects it, or the typed error of one that does not fit. */
  private async readReply(
    parsed: ParsedForDurable,
    expect: MessageDefinition | 'code',
  ): Promise<{ ok: true; value: unknown } | { ok: false; error: Error }> {
    if (parsed.intent === 'fault') {
      return { ok: false, error: remoteFailure(parsed) };
    }
    if (parsed.returnCode !== undefined) {
      if (expect === 'code') return { ok: true, value: parsed.returnCode };
      return {
        ok: false,
        error: new ReplyMismatchError(
          `message '${expect.name}'`,
          `return code ${parsed.returnCode}`,
        ),
      };
    }
    if (expect === 'code') {
      return {
        ok: false,
        error: new ReplyMismatchError('a return code', `message '${parsed.messageType}'`),
      };
    }
    if (expect.name !== parsed.messageType) {
      return {
        ok: false,
        error: new ReplyMismatchError(
          `message '${expect.name}'`,
          `message '${parsed.messageType}'`,
        ),
      };
    }
    // Unreadable bodies are thrown: recoverability moves them to the error queue.
    if (parsed.deserializationError !== undefined) throw parsed.deserializationError;
    try {
      return { ok: true, value: await validatePayload(expect, parsed.payload) };
    } catch (error) {
      return { ok: false, error: error as Error };
    }
  }

  /**
   * After the attempt's outcome: tells the `await` of this process, or the requesting instance.
   * An attempt that failed ends here only once recoverability has moved the reply on.
   */
  private settle(attempt: Attempt): void {
    if (attempt === undefined) return;
    const { record } = attempt;
    const outcome: ContinuationOutcome = attempt.ok
      ? attempt.outcome
      : { kind: 'failed', exceptionType: thrownTypeName(attempt.error), ...codeOf(attempt.error) };
    const waiter = this.waiters.get(record.correlationId);
    if (waiter !== undefined) {
      this.waiters.delete(record.correlationId);
      if (!attempt.ok) waiter.reject(attempt.error);
      else if (attempt.error !== undefined) waiter.reject(attempt.error);
      else this.settleWaiter(waiter, record.correlationId, outcome);
      return;
    }
    if (record.requester !== this.host.instanceId) this.tell(record, outcome);
  }

  private settleWaiter(waiter: Waiter, correlationId: string, outcome: ContinuationOutcome): void {
    if (outcome.kind === 'reply') waiter.resolve(outcome.value);
    else if (outcome.kind === 'timeout') {
      waiter.reject(new RequestTimeoutError(waiter.messageType, waiter.timeoutMs, correlationId));
    } else
      waiter.reject(
        new ContinuationFailedError(waiter.continuation, outcome.exceptionType, outcome.code),
      );
  }

  /** Best effort: the requester's queue may be gone, and the continuation has run regardless. */
  private tell(record: DurableRequestRecord, outcome: ContinuationOutcome): void {
    const intent: OutgoingIntent = {
      intent: 'reply',
      messageType: ContinuationDone.name,
      payload: { continuation: record.continuation, outcome },
      destination: { kind: 'queue', queue: `${this.host.endpointName}.${record.requester}` },
      correlationId: record.correlationId,
    };
    const failed = (error: unknown) =>
      this.host.options.logger.debug(
        'Could not tell the requesting instance a durable request ended',
        {
          correlationId: record.correlationId,
          error: errorMessage(error),
        },
      );
    try {
      Promise.resolve(this.host.build(intent))
        .then((operation) =>
          operation === undefined ? undefined : this.host.transportEndpoint.dispatch([operation]),
        )
        .catch(failed);
    } catch (error) {
      failed(error);
    }
  }

  /** Another instance ran the continuation of a request this one sent. */
  private told(parsed: ParsedForDurable): void {
    const waiter = this.waiters.get(parsed.correlationId);
    if (waiter === undefined) return;
    const done = parsed.payload as { outcome?: ContinuationOutcome } | undefined;
    if (done?.outcome === undefined) return;
    this.waiters.delete(parsed.correlationId);
    this.settleWaiter(waiter, parsed.correlationId, done.outcome);
  }
}

const codeOf = (error: unknown): { code?: string } => {
  const code = readString(error, 'code');
  return code === undefined ? {} : { code };
};
