import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { HandlerContext, SendOptions } from '../endpoint/endpoint.js';
import type { MessageDefinition } from '../messages/define-message.js';
import type { TransactionScope } from '../persistence/transaction-scope.js';

/** What a continuation's reply is: a message's payload, or the number of a return-code reply. */
export type ContinuationReply<E> = E extends MessageDefinition<infer R> ? R : number;

/**
 * A continuation: code registered on the endpoint under a stable name, run exactly once for a
 * durable request, with the reply or at the deadline, in a transaction of the endpoint's
 * persistence (docs/adr/0015-durable-requests.md).
 */
export interface ContinuationOptions<E extends MessageDefinition | 'code', S> {
  /** The reply it expects: a message type, or `'code'` for a return code. */
  readonly reply: E;
  /** Validates the state when a request is stored and when it is read back (any Standard Schema). */
  readonly state?: StandardSchemaV1<unknown, S>;
  /**
   * Runs once, with the reply and the request's state, in the transaction that takes the
   * request's record: queries on `storageSession(ctx)` and what it sends commit with it. It
   * throws: the transaction rolls back and the reply is retried (recoverability).
   */
  onReply(reply: ContinuationReply<E>, state: S, context: HandlerContext): void | Promise<void>;
  /**
   * Runs once when no reply came by the deadline (a durable delayed message, not a timer).
   * Omitted: the request ends with nothing but a log line.
   */
  onTimeout?(state: S, context: HandlerContext): void | Promise<void>;
  /**
   * Runs once, instead of `onReply`, for a reply that does not fit: a fault reply
   * (`RemoteFailureError`), another kind or type (`ReplyMismatchError`), a body its schema
   * refuses (`ValidationError`). Omitted: the error is thrown, so the reply goes through
   * recoverability to the error queue and the request's record stays for `onTimeout`.
   */
  onFailure?(error: Error, state: S, context: HandlerContext): void | Promise<void>;
}

/** Options of a durable request sent inside a handler or `endpoint.transaction`. */
export interface DurableSendOptions<S> extends Omit<SendOptions, 'delayMs'> {
  /** The continuation's state, saved with the request (JSON). */
  readonly state: S;
  /**
   * The deadline: `onTimeout` runs if no reply came by then.
   * @default the endpoint's `requestTimeoutMs` (30 s)
   */
  readonly timeoutMs?: number;
}

/** A registered continuation: `endpoint.request(..., { continueWith })` or `send` names it. */
export interface Continuation<
  E extends MessageDefinition | 'code' = MessageDefinition | 'code',
  S = unknown,
> {
  readonly name: string;
  readonly reply: E;
  /**
   * Sends a durable request in the transaction of a handler (`ctx`) or of
   * `endpoint.transaction` (`scope`): its record and the message commit together. Resolves with
   * the request's correlation id once both are part of the transaction; the reply is not awaited
   * here (it cannot arrive before the commit), the continuation handles it.
   */
  send<T>(
    owner: HandlerContext | TransactionScope,
    definition: MessageDefinition<T>,
    payload: T,
    options: DurableSendOptions<S>,
  ): Promise<string>;
}

/** Options of `endpoint.request(..., { continueWith })`. */
export interface DurableRequestOptions<E extends MessageDefinition | 'code', S>
  extends DurableSendOptions<S> {
  readonly continueWith: Continuation<E, S>;
  /** Must be the continuation's reply, when given. */
  readonly expect?: E;
  /** Cancels the wait in this process only: the continuation still runs. */
  readonly signal?: AbortSignal;
}
