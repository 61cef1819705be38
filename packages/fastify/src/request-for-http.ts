import type { ServerResponse } from 'node:http';
import {
  type ContinuationReply,
  DeserializationError,
  type DurableRequestOptions,
  type Endpoint,
  ForbiddenKeyError,
  type MessageDefinition,
  type Reply,
  type RequestOptions,
  ValidationError,
  validatePayload,
} from '@tidings/core';
import { followSignal } from './follow-signal.js';
import { publicMessageFor, withHttpStatus, withPublicMessage } from './http-status.js';

/** The response of the HTTP request being answered: node's, Fastify's `reply.raw`, Express's `res`. */
export type HttpResponseLike = Pick<ServerResponse, 'once' | 'off' | 'writableFinished'> & {
  readonly destroyed: boolean;
};

export interface HttpRequestOptions<E> extends RequestOptions<E> {
  /**
   * The response this request answers. If its connection closes before the response is sent
   * (the client went away), the request is aborted at once: its registry entry is removed and a
   * late reply goes to the endpoint's handlers, or is discarded.
   */
  readonly response: HttpResponseLike;
  /**
   * Check the payload with the message's schema (if it has one) before sending, so bad HTTP
   * input fails with `ValidationError` (400) instead of reaching the error queue on the far side.
   * The schema's output is what is sent.
   * @default true
   */
  readonly validate?: boolean;
}

/** Why a request was aborted when its HTTP client disconnected (the `cause` of the `RequestAbortedError`). */
export class ClientDisconnectedError extends Error {
  constructor() {
    super('The HTTP client disconnected before the reply arrived.');
    this.name = 'ClientDisconnectedError';
  }
}

/**
 * An `AbortSignal` that aborts when `response`'s connection closes before the response was
 * sent, or when `signal` (if given) aborts, with its reason. `dispose` removes the listeners once
 * the request is over (keep-alive sockets live on).
 */
export function abortOnDisconnect(
  response: HttpResponseLike,
  signal?: AbortSignal,
): {
  readonly signal: AbortSignal;
  dispose(): void;
} {
  const controller = new AbortController();
  const onClose = () => {
    if (!response.writableFinished) controller.abort(new ClientDisconnectedError());
  };
  const unfollow = followSignal(controller, signal);
  if (response.destroyed) onClose();
  else response.once('close', onClose);
  return {
    signal: controller.signal,
    dispose: () => {
      response.off('close', onClose);
      unfollow();
    },
  };
}

/**
 * `endpoint.request` for code that answers an HTTP request: the wait is aborted the moment the
 * HTTP client disconnects, the payload is checked against the message's schema first, and a
 * failure carries the HTTP `statusCode` for it (see `httpStatusFor`), keeping its Tidings class.
 */
export function requestForHttp<T, E extends MessageDefinition | 'code', S>(
  endpoint: Endpoint,
  definition: MessageDefinition<T>,
  payload: T,
  options: DurableRequestOptions<E, S> & {
    readonly response: HttpResponseLike;
    readonly validate?: boolean;
  },
): Promise<ContinuationReply<E>>;
export function requestForHttp<T, R>(
  endpoint: Endpoint,
  definition: MessageDefinition<T>,
  payload: T,
  options: HttpRequestOptions<MessageDefinition<R>> & { readonly expect: MessageDefinition<R> },
): Promise<R>;
export function requestForHttp<T>(
  endpoint: Endpoint,
  definition: MessageDefinition<T>,
  payload: T,
  options: HttpRequestOptions<'code'> & { readonly expect: 'code' },
): Promise<number>;
export function requestForHttp<T>(
  endpoint: Endpoint,
  definition: MessageDefinition<T>,
  payload: T,
  options: HttpRequestOptions<undefined>,
): Promise<Reply>;
export async function requestForHttp(
  endpoint: Endpoint,
  definition: MessageDefinition,
  payload: unknown,
  options: HttpRequestOptions<MessageDefinition | 'code' | undefined>,
): Promise<unknown> {
  const { response, validate, signal, ...requestOptions } = options;
  const disconnect = abortOnDisconnect(response, signal);
  try {
    // `validate: undefined` means "not given", like leaving it out.
    const checked = validate !== false ? await validatePayload(definition, payload) : payload;
    return await endpoint
      .request(definition, checked, {
        ...requestOptions,
        signal: disconnect.signal,
      } as RequestOptions<undefined>)
      .catch((error: unknown) => {
        throw forHttpClient(error, definition.name);
      });
  } catch (error) {
    throw withHttpStatus(error);
  } finally {
    disconnect.dispose();
  }
}

/**
 * An error of `endpoint.request` as the HTTP client may see it. Schema and parse failures there
 * are the reply's (the payload was checked before), so the far side's fault (502), and their
 * messages quote the reply: the client gets a generic one. So do transport failures, whose
 * messages may name the broker. The original is the copy's `cause`, for logs.
 */
function forHttpClient(error: unknown, messageType: string): unknown {
  if (error instanceof ForbiddenKeyError) return error; // the payload's: 400
  if (error instanceof ValidationError) {
    return withHttpStatus(
      withPublicMessage(
        error,
        `The reply to '${messageType}' failed the schema of the message expected.`,
      ),
      502,
    );
  }
  if (error instanceof DeserializationError) {
    return withHttpStatus(
      withPublicMessage(error, `The reply to '${messageType}' could not be read.`),
      502,
    );
  }
  const generic = error instanceof Error ? publicMessageFor(error) : undefined;
  return generic === undefined ? error : withPublicMessage(error as Error, generic);
}
