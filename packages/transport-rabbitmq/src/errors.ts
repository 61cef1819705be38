import {
  DestinationNotFoundError,
  type TidingsError,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core';
import {
  mapNativeError,
  type NativeErrorContext,
  type NativeErrorTable,
} from '@tidings/core/transport';

/** AMQP reply codes that matter here (AMQP 0-9-1 spec, section 1.9). */
export const AmqpCode = {
  ConnectionForced: 320,
  AccessRefused: 403,
  NotFound: 404,
  ResourceLocked: 405,
  PreconditionFailed: 406,
} as const;

/**
 * What went wrong where: `operation` (e.g. `connect to amqp://guest:***@host:5672`, `send to
 * 'Sales'`, already redacted), the queue or exchange concerned (for 404s), and the `secrets` cut
 * out of every message and cause.
 */
export type ErrorContext = NativeErrorContext;

/** The AMQP reply code on an amqplib error (`code`), when it has one. */
export function amqpCodeOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
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

/**
 * amqplib's errors by AMQP reply code and message; socket codes (`ECONNREFUSED`, ...) and the
 * rest are left to the base: unavailable, else a retryable `TransportError`.
 */
const rabbitMqErrors: NativeErrorTable = {
  system: 'RabbitMQ',
  retryableByDefault: true,
  map({ root, code, detail, cause, what }, context) {
    if (code === AmqpCode.NotFound && context.destination !== undefined) {
      return new DestinationNotFoundError(context.destination, { cause });
    }
    if (code === AmqpCode.AccessRefused || /ACCESS[-_]REFUSED/.test(detail)) {
      return new TransportError(
        `${what}: access refused (${detail}). Check the user name, password and vhost permissions.`,
        { cause, isRetryable: false },
      );
    }
    if (code === AmqpCode.PreconditionFailed) {
      return new TransportError(
        `${what}: the broker refused it (${detail}). An existing queue or exchange with other settings (type, arguments) is the usual cause; delete it or align the options.`,
        { cause, isRetryable: false },
      );
    }
    if (code === AmqpCode.NotFound) {
      return new TransportError(`${what}: ${detail}`, { cause, isRetryable: false });
    }
    if (code === AmqpCode.ConnectionForced || isClosedError(root)) {
      return new TransportUnavailableError(`${what}: the broker is unavailable (${detail}).`, {
        cause,
      });
    }
    if (isNackError(root)) {
      return new TransportError(`${what}: the broker refused to take the message (nack).`, {
        cause,
        isRetryable: true,
      });
    }
    if (root instanceof RangeError) {
      return new TransportError(`${what}: ${detail}`, { cause, isRetryable: false });
    }
    return undefined;
  },
};

/** Maps an amqplib or socket error onto core's taxonomy. Secrets never survive into the result. */
export function mapRabbitMqError(error: unknown, context: ErrorContext): TidingsError {
  // By code, not class: a Tidings error from another copy of core passes through as well.
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') {
    if (error.code.startsWith('TIDINGS_')) return error as TidingsError;
  }
  return mapNativeError(error, context, rabbitMqErrors);
}
