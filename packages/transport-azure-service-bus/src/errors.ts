import { isServiceBusError } from '@azure/service-bus';
import {
  DestinationNotFoundError,
  mapNativeError,
  type NativeErrorContext,
  type NativeErrorFacts,
  type NativeErrorTable,
  redactSecrets,
  type TidingsError,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core/transport';

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
 * Service Bus's cases, classified by what the SDK threw (the SDK translates the AMQP error into
 * one `ServiceBusError` with a code), and worded `Service Bus <operation> failed (<code>): <text>`
 * with the text of that error, secrets cut out. The base keeps `cause` free of them.
 */
const serviceBusTable: NativeErrorTable = {
  system: 'Service Bus',
  map({ error, cause }: NativeErrorFacts, context: NativeErrorContext): TidingsError {
    const native = error as { message?: unknown; code?: unknown; retryable?: unknown };
    const text = redactSecrets(String(native?.message ?? error), context.secrets ?? []);
    const what = `Service Bus ${context.operation} failed`;
    const options = { cause };
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
    // Not from the AMQP side (the administration client's, a custom installer's): worded the same.
    const code = typeof native?.code === 'string' ? native.code : undefined;
    if (code !== undefined && NETWORK.has(code)) {
      return new TransportUnavailableError(`${what} (${code}): ${text}`, options);
    }
    return new TransportError(`${what}: ${text}`, {
      ...options,
      isRetryable: native?.retryable === true,
    });
  },
};

/**
 * Maps an error from @azure/service-bus to Tidings' taxonomy. Retryable: busy, timeouts,
 * communication problems, lock lost (the message comes back), quota (space frees up).
 * Not retryable: unauthorized, disabled entity, message too large. A `TidingsError` passes
 * through; the SDK's `AggregateError` of spent retries maps as its last attempt (a busy namespace
 * is still busy, and still retryable). Pass the connection string and key as `secrets`: neither
 * the message nor any level of `cause` keeps them.
 */
export function mapAzureServiceBusError(error: unknown, context: NativeErrorContext): TidingsError {
  return mapNativeError(error, context, serviceBusTable);
}

/** Maps what an operation threw, with the transport's secrets: see `mapAzureServiceBusError`. */
export type FailWith = (error: unknown, operation: string, destination?: string) => TidingsError;

export function failWith(secrets: readonly string[]): FailWith {
  return (error, operation, destination) =>
    mapAzureServiceBusError(error, {
      operation,
      ...(destination !== undefined ? { destination } : {}),
      secrets,
    });
}
