import {
  DestinationNotFoundError,
  type TidingsError,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core';
import { redactSecrets } from '@tidings/core/transport';

/** AMQP reply codes that matter here (AMQP 0-9-1 spec, section 1.9). */
export const AmqpCode = {
  ConnectionForced: 320,
  AccessRefused: 403,
  NotFound: 404,
  ResourceLocked: 405,
  PreconditionFailed: 406,
} as const;

/** Socket-level failures: the broker cannot be reached right now. */
const unreachable = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
]);

/** What went wrong where; `secrets` are cut out of every message. */
export interface ErrorContext {
  /** e.g. `connect to amqp://guest:***@host:5672`, `send to 'Sales'`. Must already be redacted. */
  readonly operation: string;
  /** The queue or exchange concerned, for 404s. */
  readonly destination?: string;
  readonly secrets: readonly (string | undefined)[];
}

/** The AMQP reply code on an amqplib error (`code`), when it has one. */
export function amqpCodeOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** The socket error code (`ECONNREFUSED`, ...) on an error, when it has one. */
function socketCodeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * The broker nacked a confirmed publish: it could not take the message, e.g. while a quorum
 * queue elects a new leader after a node left. Sending again may work.
 */
export function isNackError(error: unknown): boolean {
  return /nacked/i.test(messageOf(error));
}

/** A channel or connection went away under an operation: trying again on a new one may work. */
export function isClosedError(error: unknown): boolean {
  if (error instanceof Error && error.name === 'IllegalOperationError') return true;
  const message = messageOf(error);
  return /channel closed|connection closed|channel ended|socket closed|closed by server/i.test(
    message,
  );
}

/** A native error whose text is safe to keep as `cause`: the original, or a redacted copy. */
function safeCause(error: unknown, secrets: readonly (string | undefined)[]): unknown {
  const text = messageOf(error);
  const redacted = redactSecrets(text, secrets);
  if (redacted === text && !(error instanceof Error && hasSecret(error.stack, secrets))) {
    return error;
  }
  const copy = new Error(redacted);
  copy.name = error instanceof Error ? error.name : 'Error';
  return copy;
}

function hasSecret(text: string | undefined, secrets: readonly (string | undefined)[]): boolean {
  if (text === undefined) return false;
  return secrets.some(
    (secret) => secret !== undefined && secret.length >= 3 && text.includes(secret),
  );
}

/** Maps an amqplib or socket error onto core's taxonomy. Secrets never survive into the result. */
export function mapRabbitMqError(error: unknown, context: ErrorContext): TidingsError {
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') {
    if (error.code.startsWith('TIDINGS_')) return error as TidingsError;
  }
  const cause = safeCause(error, context.secrets);
  const detail = redactSecrets(messageOf(error), context.secrets);
  const amqpCode = amqpCodeOf(error);
  const socketCode = socketCodeOf(error);
  const what = `RabbitMQ: could not ${context.operation}`;

  if (amqpCode === AmqpCode.NotFound && context.destination !== undefined) {
    return new DestinationNotFoundError(context.destination, { cause });
  }
  if (amqpCode === AmqpCode.AccessRefused || /ACCESS[-_]REFUSED/.test(detail)) {
    return new TransportError(
      `${what}: access refused (${detail}). Check the user name, password and vhost permissions.`,
      { cause, isRetryable: false },
    );
  }
  if (amqpCode === AmqpCode.PreconditionFailed) {
    return new TransportError(
      `${what}: the broker refused it (${detail}). An existing queue or exchange with other settings (type, arguments) is the usual cause; delete it or align the options.`,
      { cause, isRetryable: false },
    );
  }
  if (amqpCode === AmqpCode.NotFound) {
    return new TransportError(`${what}: ${detail}`, { cause, isRetryable: false });
  }
  if (
    (socketCode !== undefined && unreachable.has(socketCode)) ||
    amqpCode === AmqpCode.ConnectionForced ||
    isClosedError(error)
  ) {
    return new TransportUnavailableError(`${what}: the broker is unavailable (${detail}).`, {
      cause,
    });
  }
  if (isNackError(error)) {
    return new TransportError(`${what}: the broker refused to take the message (nack).`, {
      cause,
      isRetryable: true,
    });
  }
  if (error instanceof RangeError) {
    return new TransportError(`${what}: ${detail}`, { cause, isRetryable: false });
  }
  return new TransportError(`${what}: ${detail}`, { cause, isRetryable: true });
}
