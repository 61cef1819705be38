import { isServiceBusError } from '@azure/service-bus';
import {
  DestinationNotFoundError,
  isTidingsError,
  type TidingsError,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core';
import { redactSecrets } from '@tidings/core/transport';

export interface ErrorContext {
  /** What was being done, e.g. `send to 'orders'`. */
  readonly operation: string;
  /** The queue or topic involved, for DestinationNotFoundError. */
  readonly destination?: string;
  /** Connection string, key: removed from every message. */
  readonly secrets: readonly (string | undefined)[];
}

/** Network-level failures that retrying later may fix. */
const NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * Maps an error from @azure/service-bus to Tidings' taxonomy. Retryable: busy, timeouts,
 * communication problems, lock lost (the message comes back), quota (space frees up).
 * Not retryable: unauthorized, disabled entity, message too large.
 */
export function mapServiceBusError(error: unknown, context: ErrorContext): TidingsError {
  if (isTidingsError(error)) return error;
  // @azure/core-amqp 4.4's retry throws an AggregateError of every attempt's error once its
  // retries are spent: the last attempt's error says what went wrong (a busy namespace is still
  // busy, and still retryable), where the aggregate has no code and an empty message.
  if (error instanceof AggregateError && error.errors.length > 0) {
    return mapServiceBusError(error.errors[error.errors.length - 1], context);
  }
  const native = error as { message?: unknown; code?: unknown; retryable?: unknown };
  const text = redactSecrets(String(native?.message ?? error), context.secrets);
  const what = `Service Bus ${context.operation} failed`;
  const options = { cause: error };
  if (isServiceBusError(error)) {
    switch (error.code) {
      case 'MessagingEntityNotFound':
        return new DestinationNotFoundError(context.destination ?? 'unknown', options);
      case 'ServiceBusy':
      case 'ServiceTimeout':
      case 'ServiceCommunicationProblem':
        return new TransportUnavailableError(`${what} (${error.code}): ${text}`, options);
      case 'UnauthorizedAccess':
        return new TransportError(
          `${what} (UnauthorizedAccess): ${text}. Check the key or the credential's role (Azure Service Bus Data Sender/Receiver; Owner or the Manage claim to create entities).`,
          options,
        );
      case 'MessageLockLost':
      case 'SessionLockLost':
        return new TransportError(
          `${what} (${error.code}): ${text}. The message will be delivered again.`,
          { ...options, isRetryable: true },
        );
      case 'QuotaExceeded':
        return new TransportError(`${what} (QuotaExceeded): ${text}`, {
          ...options,
          isRetryable: true,
        });
      case 'MessageSizeExceeded':
      case 'MessagingEntityDisabled':
        return new TransportError(`${what} (${error.code}): ${text}`, options);
      default:
        return new TransportError(`${what} (${error.code}): ${text}`, {
          ...options,
          isRetryable: error.retryable === true,
        });
    }
  }
  const code = typeof native?.code === 'string' ? native.code : undefined;
  if (code !== undefined && NETWORK.has(code)) {
    return new TransportUnavailableError(`${what} (${code}): ${text}`, options);
  }
  return new TransportError(`${what}: ${text}`, {
    ...options,
    isRetryable: native?.retryable === true,
  });
}
