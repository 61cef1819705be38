import {
  DeserializationError,
  DestinationNotFoundError,
  EndpointStateError,
  EndpointStoppedError,
  isTidingsError,
  MessageTooLargeError,
  RemoteFailureError,
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
 * - `DestinationNotFoundError`, `ReplyMismatchError`, `DeserializationError`, `TransportError`,
 *   `RemoteFailureError` → 502: the far side is missing, answered with something else than
 *   expected, failed the request for good (a fault reply), or its reply cannot be read (only replies are deserialized on this side). `requestForHttp` also answers
 *   502 for a reply that fails the expected message's schema (a `ValidationError` there).
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
    error instanceof DeserializationError ||
    error instanceof TransportError ||
    error instanceof RemoteFailureError
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
 * What an HTTP client is told instead of the error's own message, where that message may name
 * infrastructure (a broker's address) or quote the far side's reply. Log the error for the details.
 */
export function publicMessageFor(error: unknown): string | undefined {
  if (error instanceof TransportUnavailableError) {
    return 'The message broker is unavailable. Try again later.';
  }
  if (error instanceof TransportError) return 'The message broker failed the operation.';
  if (error instanceof DeserializationError) {
    return 'The reply from the service behind this server could not be read.';
  }
  // Its message names the far side's exception: internal detail for logs, not for HTTP clients.
  if (error instanceof RemoteFailureError) {
    return 'The service behind this server failed the request.';
  }
  return undefined;
}

/**
 * The body to send for `error`, with the status `requestForHttp` gave it (else `httpStatusFor`).
 * Tidings' messages name what went wrong and never hold secrets; those that may name
 * infrastructure or quote a reply are replaced by a generic one (`publicMessageFor`), and other
 * errors are reduced to a generic message (log them instead).
 */
export function httpErrorBody(error: unknown): HttpErrorBody {
  const given = (error as { statusCode?: unknown } | null)?.statusCode;
  const statusCode =
    isTidingsError(error) && typeof given === 'number' ? given : httpStatusFor(error);
  if (isTidingsError(error)) {
    return { statusCode, code: error.code, message: publicMessageFor(error) ?? error.message };
  }
  return { statusCode, code: 'INTERNAL_SERVER_ERROR', message: 'Internal Server Error' };
}

/**
 * Gives a Tidings error the `statusCode` property that Fastify's (and Express's) error handlers
 * read (`httpStatusFor`'s unless given), keeping its class and `code`, so
 * `instanceof RequestTimeoutError` still works.
 */
export function withHttpStatus<E>(error: E, statusCode?: number): E {
  if (isTidingsError(error) && !('statusCode' in error)) {
    Object.defineProperty(error, 'statusCode', {
      value: statusCode ?? httpStatusFor(error),
      enumerable: false,
      configurable: true,
      writable: true,
    });
  }
  return error;
}

/**
 * A copy of `error` (same class, code and fields) whose message is `message`, for errors whose own
 * message must not reach an HTTP client; the original is its `cause`, so logs keep the details.
 */
export function withPublicMessage<E extends Error>(error: E, message: string): E {
  const copy = Object.create(Object.getPrototypeOf(error)) as E;
  Object.assign(copy, error);
  // The original's frames under the new message: its first line may hold what the client must not see.
  const frames = error.stack?.split('\n').slice(1).join('\n');
  const stack = frames ? `${error.name}: ${message}\n${frames}` : `${error.name}: ${message}`;
  for (const [key, value] of [
    ['message', message],
    ['stack', stack],
    ['cause', error],
  ] as const) {
    Object.defineProperty(copy, key, {
      value,
      enumerable: false,
      configurable: true,
      writable: true,
    });
  }
  return copy;
}
