import {
  DestinationNotFoundError,
  EndpointStateError,
  EndpointStoppedError,
  isTidingsError,
  MessageTooLargeError,
  ReplyMismatchError,
  RequestAbortedError,
  RequestTimeoutError,
  TransportError,
  TransportUnavailableError,
  ValidationError,
} from '@tidings/core';

/**
 * The status nginx logs for a request whose client closed the connection first. Nothing is sent
 * with it (nobody is listening); it only labels the outcome in logs.
 */
export const clientClosedRequestStatus = 499;

/**
 * The HTTP status for an error raised while a web request waited for its reply:
 * - `RequestTimeoutError` → 504: the service behind the bus did not answer in time.
 * - `ValidationError` → 400: the payload built from the HTTP input failed the message's schema.
 * - `MessageTooLargeError` → 413: the payload is too large for the transport.
 * - `RequestAbortedError` → 499: the HTTP client disconnected (or your signal aborted).
 * - `EndpointStoppedError`, `EndpointStateError`, `TransportUnavailableError` → 503: shutting
 *   down, not started yet, or the broker is unreachable; trying again later may work.
 * - `DestinationNotFoundError`, `ReplyMismatchError`, `TransportError` → 502: the far side is
 *   missing or answered with something else than expected.
 * - `NoRouteError`, `SendOnlyEndpointError`, `ConfigurationError`, `UsageError` and anything
 *   else → 500: a bug or a misconfiguration in this server.
 */
export function httpStatusFor(error: unknown): number {
  if (error instanceof RequestTimeoutError) return 504;
  if (error instanceof ValidationError) return 400;
  if (error instanceof MessageTooLargeError) return 413;
  if (error instanceof RequestAbortedError) return clientClosedRequestStatus;
  if (
    error instanceof EndpointStoppedError ||
    error instanceof EndpointStateError ||
    error instanceof TransportUnavailableError
  ) {
    return 503;
  }
  if (
    error instanceof DestinationNotFoundError ||
    error instanceof ReplyMismatchError ||
    error instanceof TransportError
  ) {
    return 502;
  }
  // NoRouteError, SendOnlyEndpointError, ConfigurationError, UsageError, anything else.
  return 500;
}

/** The JSON body for an error response: Tidings errors keep their code and message. */
export interface HttpErrorBody {
  readonly statusCode: number;
  /** A Tidings error code such as `TIDINGS_REQUEST_TIMEOUT`, or `INTERNAL_SERVER_ERROR`. */
  readonly code: string;
  readonly message: string;
}

/**
 * The body to send for `error`. Tidings' messages name what went wrong and never hold secrets;
 * other errors may, so they are reduced to a generic message (log them instead).
 */
export function httpErrorBody(error: unknown): HttpErrorBody {
  const statusCode = httpStatusFor(error);
  if (isTidingsError(error)) return { statusCode, code: error.code, message: error.message };
  return { statusCode, code: 'INTERNAL_SERVER_ERROR', message: 'Internal Server Error' };
}

/**
 * Gives a Tidings error the `statusCode` property that Fastify's (and Express's) error handlers
 * read, keeping its class and `code`, so `instanceof RequestTimeoutError` still works.
 */
export function withHttpStatus<E>(error: E): E {
  if (isTidingsError(error) && !('statusCode' in error)) {
    Object.defineProperty(error, 'statusCode', {
      value: httpStatusFor(error),
      enumerable: false,
      configurable: true,
      writable: true,
    });
  }
  return error;
}
