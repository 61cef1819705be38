import {
  isTidingsError,
  type TidingsError,
  TransportError,
  TransportUnavailableError,
} from '../errors.js';
import { redactSecrets } from '../security/redact.js';

/** What a transport was doing when its client library failed. */
export interface NativeErrorContext {
  /** e.g. `send to 'orders'`, `connect to amqp://guest:***@host`. Must hold no secret. */
  readonly operation: string;
  /** The queue or topic concerned, for `DestinationNotFoundError`. */
  readonly destination?: string;
  /** Values cut out of the message and of `cause` (passwords, keys, connection strings). */
  readonly secrets?: readonly (string | undefined)[];
}

/** A native error, read once for a transport's table: its innermost cause, redacted. */
export interface NativeErrorFacts {
  /** What was thrown, as thrown. Never attach it: use `cause`. */
  readonly error: unknown;
  /** The innermost cause (client libraries wrap "retries exceeded" around the real failure). */
  readonly root: unknown;
  /** The root's `name`, or `''`. */
  readonly name: string;
  /** The root's `code`, else the thrown error's: an AMQP reply code, `ECONNREFUSED`, ... */
  readonly code: string | number | undefined;
  /** The root's message with every secret cut out. */
  readonly detail: string;
  /** Safe to attach as `cause`: the thrown error itself, or a copy with its secrets cut out. */
  readonly cause: unknown;
  /** `<system>: could not <operation>`: the start of every message. */
  readonly what: string;
}

/** How one transport maps its client library's errors; what it does not map, the base does. */
export interface NativeErrorTable {
  /** The broker's name in messages: `RabbitMQ`, `Kafka`, `Service Bus`. */
  readonly system: string;
  /** The transport's own cases; `undefined` leaves the error to the socket codes and the default. */
  readonly map: (facts: NativeErrorFacts, context: NativeErrorContext) => TidingsError | undefined;
  /** Whether an error no case knows may succeed when tried again. Default false. */
  readonly retryableByDefault?: boolean | ((facts: NativeErrorFacts) => boolean);
  /** The next error inward; default `originalError` (kafkajs), then `cause`. */
  readonly innerOf?: (error: object) => unknown;
}

/** Socket-level failures: the broker cannot be reached right now. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
]);

/** How deep a chain of causes is followed; client libraries wrap a few levels at most. */
const MAX_DEPTH = 5;

function defaultInnerOf(error: object): unknown {
  const { originalError, cause } = error as { originalError?: unknown; cause?: unknown };
  return originalError ?? cause;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (error !== null && typeof error === 'object') {
    const message = (error as { message?: unknown }).message;
    if (typeof message === 'string') return message;
  }
  try {
    return String(error);
  } catch {
    return 'an unprintable value';
  }
}

function codeOf(error: unknown): string | number | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' || typeof code === 'number' ? code : undefined;
}

function nameOf(error: unknown): string {
  if (error === null || typeof error !== 'object') return '';
  const name = (error as { name?: unknown }).name;
  return typeof name === 'string' ? name : '';
}

function holdsSecret(text: unknown, secrets: readonly (string | undefined)[]): boolean {
  if (typeof text !== 'string') return false;
  return secrets.some(
    (secret) => secret !== undefined && secret.length >= 3 && text.includes(secret),
  );
}

/**
 * `error`, or where its message, stack or any cause inward holds a secret, a copy of the chain with
 * the secrets cut out (name and code kept), so that `cause` never carries a password into a log.
 */
export function redactError(
  error: unknown,
  secrets: readonly (string | undefined)[],
  innerOf: (error: object) => unknown = defaultInnerOf,
  depth = 0,
): unknown {
  if (error === null || typeof error !== 'object') {
    return typeof error === 'string' ? redactSecrets(error, secrets) : error;
  }
  const inner = depth < MAX_DEPTH ? innerOf(error) : undefined;
  const safeInner =
    inner === undefined ? undefined : redactError(inner, secrets, innerOf, depth + 1);
  const own = error as { message?: unknown; stack?: unknown };
  if (
    !holdsSecret(own.message, secrets) &&
    !holdsSecret(own.stack, secrets) &&
    safeInner === inner
  ) {
    return error;
  }
  const copy = new Error(
    redactSecrets(messageOf(error), secrets),
    safeInner === undefined ? undefined : { cause: safeInner },
  ) as Error & { code?: string | number };
  copy.name = nameOf(error) || 'Error';
  const code = codeOf(error);
  if (code !== undefined) copy.code = code;
  if (typeof own.stack === 'string') copy.stack = redactSecrets(own.stack, secrets);
  return copy;
}

/**
 * Maps what a client library threw onto core's taxonomy: a `TidingsError` passes through, an
 * `AggregateError` of attempts maps as its last attempt, the transport's table decides what it
 * knows from the innermost cause, socket codes mean `TransportUnavailableError`, and anything else
 * is a `TransportError`. Secrets never survive into the message or the `cause`.
 */
export function mapNativeError(
  error: unknown,
  context: NativeErrorContext,
  table: NativeErrorTable,
): TidingsError {
  if (isTidingsError(error)) return error;
  // A retry policy that gives up may throw every attempt's error at once: the last one says what
  // is wrong now, where the aggregate has no code and often no message.
  if (error instanceof AggregateError && error.errors.length > 0) {
    return mapNativeError(error.errors[error.errors.length - 1], context, table);
  }
  const secrets = context.secrets ?? [];
  const innerOf = table.innerOf ?? defaultInnerOf;
  let root: unknown = error;
  for (let depth = 0; depth < MAX_DEPTH && root !== null && typeof root === 'object'; depth++) {
    const inner = innerOf(root);
    if (inner === undefined || inner === null || inner === root) break;
    root = inner;
  }
  const facts: NativeErrorFacts = {
    error,
    root,
    name: nameOf(root),
    code: codeOf(root) ?? codeOf(error),
    detail: redactSecrets(messageOf(root), secrets),
    cause: redactError(error, secrets, innerOf),
    what: `${table.system}: could not ${context.operation}`,
  };
  const mapped = table.map(facts, context);
  if (mapped !== undefined) return mapped;
  if (typeof facts.code === 'string' && UNREACHABLE.has(facts.code)) {
    return new TransportUnavailableError(
      `${facts.what}: the broker is unavailable (${facts.detail}).`,
      { cause: facts.cause },
    );
  }
  const retryable =
    typeof table.retryableByDefault === 'function'
      ? table.retryableByDefault(facts)
      : (table.retryableByDefault ?? false);
  return new TransportError(`${facts.what}: ${facts.detail}`, {
    cause: facts.cause,
    isRetryable: retryable,
  });
}
