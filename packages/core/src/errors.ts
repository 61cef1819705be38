/**
 * The error taxonomy. Every error Tidings raises is a `TidingsError` with a stable `code`
 * (match on it, not on messages), an optional `cause`, and `isRetryable` (would the same
 * operation succeed if tried again later?). Transports map native errors onto these classes.
 */
export type TidingsErrorCode =
  | 'TIDINGS_CONFIGURATION'
  | 'TIDINGS_USAGE'
  | 'TIDINGS_NO_ROUTE'
  | 'TIDINGS_SEND_ONLY'
  | 'TIDINGS_ENDPOINT_STATE'
  | 'TIDINGS_ENDPOINT_STOPPED'
  | 'TIDINGS_REQUEST_TIMEOUT'
  | 'TIDINGS_REQUEST_ABORTED'
  | 'TIDINGS_REPLY_MISMATCH'
  | 'TIDINGS_REMOTE_FAILURE'
  | 'TIDINGS_CONTINUATION_FAILED'
  | 'TIDINGS_MESSAGE_TOO_LARGE'
  | 'TIDINGS_SERIALIZATION'
  | 'TIDINGS_DESERIALIZATION'
  | 'TIDINGS_VALIDATION'
  | 'TIDINGS_MALFORMED_MESSAGE'
  | 'TIDINGS_NO_HANDLER'
  | 'TIDINGS_DESTINATION_NOT_FOUND'
  | 'TIDINGS_INVALID_DESTINATION'
  | 'TIDINGS_TRANSPORT_UNAVAILABLE'
  | 'TIDINGS_TRANSPORT'
  | 'TIDINGS_PERSISTENCE';

export interface TidingsErrorOptions {
  readonly cause?: unknown;
  readonly isRetryable?: boolean;
}

export class TidingsError extends Error {
  readonly code: TidingsErrorCode;
  readonly isRetryable: boolean;

  constructor(code: TidingsErrorCode, message: string, options: TidingsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.isRetryable = options.isRetryable ?? false;
  }
}

/** Invalid options given to `createEndpoint` or a transport factory. */
export class ConfigurationError extends TidingsError {
  constructor(message: string, options?: TidingsErrorOptions) {
    super('TIDINGS_CONFIGURATION', message, options);
  }
}

/** An API called in a way that cannot work (e.g. `register` after the send was dispatched). */
export class UsageError extends TidingsError {
  constructor(message: string, options?: TidingsErrorOptions) {
    super('TIDINGS_USAGE', message, options);
  }
}

/** A send with neither a `to` nor a route for its message type. */
export class NoRouteError extends TidingsError {
  readonly messageType: string;
  constructor(messageType: string) {
    super(
      'TIDINGS_NO_ROUTE',
      `No route for message type '${messageType}': add it to the endpoint's \`routes\` ({ '${messageType}': 'DestinationEndpoint' }) or pass \`{ to }\` to send.`,
    );
    this.messageType = messageType;
  }
}

/** `request`, `register` or `handle` on an endpoint that has no queue to receive messages on. */
export class SendOnlyEndpointError extends TidingsError {
  constructor(endpointName: string, operation: string) {
    super(
      'TIDINGS_SEND_ONLY',
      `Endpoint '${endpointName}' is send-only: it has no input queue, so it cannot ${operation}. Create it without \`sendOnly\` to receive messages and replies.`,
    );
  }
}

/** An operation that needs a started endpoint (or a not-yet-started one). */
export class EndpointStateError extends TidingsError {
  constructor(message: string) {
    super('TIDINGS_ENDPOINT_STATE', message);
  }
}

/** A pending request rejected because its endpoint stopped before the reply arrived. */
export class EndpointStoppedError extends TidingsError {
  constructor(endpointName: string) {
    super(
      'TIDINGS_ENDPOINT_STOPPED',
      `Endpoint '${endpointName}' stopped before the reply arrived.`,
    );
  }
}

export class RequestTimeoutError extends TidingsError {
  readonly messageType: string;
  readonly timeoutMs: number;
  constructor(messageType: string, timeoutMs: number, correlationId: string) {
    super(
      'TIDINGS_REQUEST_TIMEOUT',
      `No reply to '${messageType}' (correlation id ${correlationId}) within ${timeoutMs} ms. A reply that arrives later goes to the endpoint's handlers for its type.`,
      { isRetryable: true },
    );
    this.messageType = messageType;
    this.timeoutMs = timeoutMs;
  }
}

/** A request cancelled before its reply: its `AbortSignal`, or outgoing middleware that did not send it. */
export class RequestAbortedError extends TidingsError {
  constructor(messageType: string, reason: unknown, why?: string) {
    super(
      'TIDINGS_REQUEST_ABORTED',
      `The request '${messageType}' was aborted${why === undefined ? '' : `: ${why}`}.`,
      { cause: reason },
    );
  }
}

/** The reply was of another kind than the request expected (a code for a message, another type). */
export class ReplyMismatchError extends TidingsError {
  readonly expected: string;
  readonly received: string;
  constructor(expected: string, received: string) {
    super('TIDINGS_REPLY_MISMATCH', `Expected a reply of ${expected} but received ${received}.`);
    this.expected = expected;
    this.received = received;
  }
}

/** What a fault reply says of a failure on the far side (`Fault`'s payload). */
export interface RemoteFailure {
  /** The type of the message that failed, when it had one. */
  readonly messageType?: string;
  /** The id of the message that failed. */
  readonly messageId: string;
  /** The exception's type, e.g. `NoHandlerError`. */
  readonly exceptionType: string;
  /** The exception's stable code, when it has one (`TIDINGS_NO_HANDLER`). */
  readonly code?: string;
  /** The exception's message; only when the receiver sends `faultReplies: 'type-and-message'`. */
  readonly message?: string;
}

/**
 * The request's message failed for good on the far side: it was moved to the receiver's error
 * queue (no handler, every retry failed, unreadable), and a fault reply said so.
 */
export class RemoteFailureError extends TidingsError {
  readonly fault: RemoteFailure;
  constructor(fault: RemoteFailure) {
    const code = fault.code === undefined ? '' : ` (${fault.code})`;
    const detail = fault.message === undefined ? '' : `: ${fault.message}`;
    super(
      'TIDINGS_REMOTE_FAILURE',
      `The receiver moved '${fault.messageType ?? 'the request'}' (${fault.messageId}) to its error queue after ${fault.exceptionType}${code}${detail}. No reply will come unless it is returned from there.`,
    );
    this.fault = fault;
  }
}

/**
 * A durable request's continuation failed on another instance of the endpoint (its immediate
 * retries spent), which told this one. The reply goes on through recoverability there.
 */
export class ContinuationFailedError extends TidingsError {
  readonly continuation: string;
  readonly exceptionType: string;
  constructor(continuation: string, exceptionType: string, code: string | undefined) {
    super(
      'TIDINGS_CONTINUATION_FAILED',
      `The continuation '${continuation}' failed on another instance with ${exceptionType}${code === undefined ? '' : ` (${code})`}; the reply is retried or moved to the error queue there.`,
    );
    this.continuation = continuation;
    this.exceptionType = exceptionType;
  }
}

export class MessageTooLargeError extends TidingsError {
  readonly sizeBytes: number;
  readonly maxBytes: number;
  constructor(messageType: string, sizeBytes: number, maxBytes: number, transport: string) {
    super(
      'TIDINGS_MESSAGE_TOO_LARGE',
      `Message '${messageType}' is ${sizeBytes} bytes; the ${transport} transport accepts at most ${maxBytes}. Send a reference to the data (claim check) instead of the data itself.`,
    );
    this.sizeBytes = sizeBytes;
    this.maxBytes = maxBytes;
  }
}

export class SerializationError extends TidingsError {
  constructor(messageType: string, cause: unknown) {
    super('TIDINGS_SERIALIZATION', `Could not serialize '${messageType}'.`, { cause });
  }
}

/** The body could not be turned back into a value: malformed, hostile (`__proto__`) or wrong content type. */
export class DeserializationError extends TidingsError {
  constructor(message: string, cause?: unknown) {
    super('TIDINGS_DESERIALIZATION', message, { cause });
  }
}

export interface ValidationIssue {
  readonly message: string;
  readonly path?: readonly PropertyKey[];
}

/** The payload failed its message schema. */
export class ValidationError extends TidingsError {
  readonly issues: readonly ValidationIssue[];
  constructor(messageType: string, issues: readonly ValidationIssue[]) {
    const summary = issues
      .slice(0, 5)
      .map((i) => (i.path?.length ? `${i.path.map(String).join('.')}: ${i.message}` : i.message))
      .join('; ');
    super('TIDINGS_VALIDATION', `Message '${messageType}' failed validation: ${summary}`);
    this.issues = issues;
  }
}

/**
 * The payload holds a key every receiver refuses (`__proto__`, or `constructor` with a `prototype`
 * inside, as `JSON.parse` of untrusted input yields): refused at the send so no message is produced
 * that could only end in an error queue. A `ValidationError`: it is bad input, like a schema failure.
 */
export class ForbiddenKeyError extends ValidationError {
  /** Where the key is, from the payload's root, e.g. `['order', '__proto__']`. */
  readonly path: readonly PropertyKey[];
  constructor(messageType: string, path: readonly PropertyKey[]) {
    super(messageType, [
      {
        message:
          "receivers refuse '__proto__' and 'constructor.prototype' keys (they could pollute prototypes): drop the key, e.g. parse untrusted JSON with secure-json-parse",
        path,
      },
    ]);
    this.path = path;
  }
}

/** A received message lacks a header Tidings needs (message type, message id, ...). */
export class MalformedMessageError extends TidingsError {
  constructor(message: string) {
    super('TIDINGS_MALFORMED_MESSAGE', message);
  }
}

/** A received message of a type the endpoint has no handler for. */
export class NoHandlerError extends TidingsError {
  constructor(endpointName: string, messageType: string) {
    super(
      'TIDINGS_NO_HANDLER',
      `Endpoint '${endpointName}' has no handler for '${messageType}'. Register one with endpoint.handle(), or fix the route that sent it here.`,
    );
  }
}

/** The destination queue does not exist (unroutable). */
export class DestinationNotFoundError extends TidingsError {
  readonly destination: string;
  constructor(destination: string, options?: TidingsErrorOptions) {
    super(
      'TIDINGS_DESTINATION_NOT_FOUND',
      `Destination '${destination}' does not exist. Start the receiving endpoint once (it creates its queue) or check the route.`,
      options,
    );
    this.destination = destination;
  }
}

/**
 * A destination that no transport may be given: a `to` or a received message's reply-to that is
 * not a queue name (`..`, a path, a reserved name). Never retryable: the same name fails again.
 */
export class InvalidDestinationError extends TidingsError {
  readonly destination: string;
  constructor(destination: unknown, where: string) {
    const shown = JSON.stringify(String(destination).slice(0, 300));
    super(
      'TIDINGS_INVALID_DESTINATION',
      `${where} ${shown} is not a valid destination: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit (an instance queue is two such names joined by '.'). See "Destinations" in docs/wire-format.md.`,
    );
    this.destination = String(destination);
  }
}

/** The broker cannot be reached right now; retrying later may succeed. */
export class TransportUnavailableError extends TidingsError {
  constructor(message: string, options?: TidingsErrorOptions) {
    super('TIDINGS_TRANSPORT_UNAVAILABLE', message, { isRetryable: true, ...options });
  }
}

/** Any other transport failure; `isRetryable` tells whether trying again may help. */
export class TransportError extends TidingsError {
  constructor(message: string, options?: TidingsErrorOptions) {
    super('TIDINGS_TRANSPORT', message, options);
  }
}

/**
 * The persistence (the database behind the outbox and inbox) failed; `isRetryable` tells whether
 * trying again may help (a terminated connection, a pool with no free connection in time).
 */
export class PersistenceError extends TidingsError {
  constructor(message: string, options?: TidingsErrorOptions) {
    super('TIDINGS_PERSISTENCE', message, options);
  }
}

export function isTidingsError(error: unknown): error is TidingsError {
  return error instanceof TidingsError;
}
