import type {
  ContinuationReply,
  DurableRequestOptions,
  MessageDefinition,
  Reply,
} from '@tidings/core';
import type { HttpRequestOptions } from './request-for-http.js';

/** Options of `request.awaitReply`: `endpoint.request`'s, minus the response (it is implied). */
export type AwaitReplyOptions<E> = Omit<HttpRequestOptions<E>, 'response'>;

/**
 * Sends a request over the bus and waits for its reply on behalf of the current HTTP request.
 * Rejects with the Tidings error (with an HTTP `statusCode`) on timeout, disconnect, etc.
 */
export interface AwaitReply {
  /**
   * A durable request (`continueWith`): the continuation runs once with the reply even if the
   * HTTP client gave up (a disconnect, a timeout of its own): only this wait ends.
   */
  <T, E extends MessageDefinition | 'code', S>(
    definition: MessageDefinition<T>,
    payload: T,
    options: DurableRequestOptions<E, S> & { readonly validate?: boolean },
  ): Promise<ContinuationReply<E>>;
  <T, R>(
    definition: MessageDefinition<T>,
    payload: T,
    options: AwaitReplyOptions<MessageDefinition<R>> & { readonly expect: MessageDefinition<R> },
  ): Promise<R>;
  <T>(
    definition: MessageDefinition<T>,
    payload: T,
    options: AwaitReplyOptions<'code'> & { readonly expect: 'code' },
  ): Promise<number>;
  <T>(
    definition: MessageDefinition<T>,
    payload: T,
    options?: AwaitReplyOptions<undefined>,
  ): Promise<Reply>;
}
