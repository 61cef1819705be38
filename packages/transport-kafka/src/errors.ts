import {
  DestinationNotFoundError,
  isTidingsError,
  type TidingsError,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core';
import { redactSecrets } from '@tidings/core/transport';

/** The fields kafkajs errors carry; read by shape so the mapping does not depend on class identity. */
interface NativeKafkaError {
  readonly name?: unknown;
  readonly message?: unknown;
  readonly type?: unknown;
  readonly retriable?: unknown;
  readonly cause?: unknown;
  readonly originalError?: unknown;
}

/** Broker error types meaning "this will not work until someone changes something". */
const NOT_RETRYABLE = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED',
  'UNSUPPORTED_SASL_MECHANISM',
  'ILLEGAL_SASL_STATE',
  'INVALID_TOPIC_EXCEPTION',
  'INVALID_REQUIRED_ACKS',
  'INVALID_CONFIG',
  'POLICY_VIOLATION',
]);

const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD']);

/** Connection-level failures: the cluster (or the way to it) is unavailable right now. */
const UNAVAILABLE_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSLockTimeout',
  'KafkaJSTimeout',
  'KafkaJSGroupCoordinatorNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
]);

export interface MapErrorContext {
  /** What was being done, e.g. `produce to orders`. */
  readonly operation: string;
  /** The destination queue or topic, for DestinationNotFoundError. */
  readonly destination?: string;
  /** Values that must not appear in messages (passwords). */
  readonly secrets?: readonly (string | undefined)[];
}

/** Follows "retries exceeded" and "non-retriable" wrappers down to the error that caused them. */
function rootCause(error: NativeKafkaError): NativeKafkaError {
  let current = error;
  for (let depth = 0; depth < 5; depth++) {
    const inner = (current.originalError ?? current.cause) as NativeKafkaError | undefined;
    if (inner === undefined || inner === null || typeof inner !== 'object' || inner === current) {
      break;
    }
    current = inner;
  }
  return current;
}

/** Maps a kafkajs error (or anything thrown beside it) to core's error taxonomy. */
export function mapKafkaError(error: unknown, context: MapErrorContext): TidingsError {
  if (isTidingsError(error)) return error;
  const secrets = context.secrets ?? [];
  if (error === null || typeof error !== 'object') {
    return new TransportError(
      redactSecrets(`Kafka: ${context.operation} failed: ${String(error)}`, secrets),
      { cause: error },
    );
  }
  const native = error as NativeKafkaError;
  const cause = rootCause(native);
  const type = typeof cause.type === 'string' ? cause.type : undefined;
  const name = typeof cause.name === 'string' ? cause.name : '';
  const detail = redactSecrets(
    typeof cause.message === 'string' ? cause.message : String(cause),
    secrets,
  );
  const message = `Kafka: ${context.operation} failed: ${detail}${type ? ` (${type})` : ''}`;

  if (type === 'UNKNOWN_TOPIC_OR_PARTITION' && context.destination !== undefined) {
    return new DestinationNotFoundError(context.destination, { cause: error });
  }
  if (type !== undefined && TOO_LARGE.has(type)) {
    return new TransportError(
      `${message}. The record exceeds the topic's or broker's size limit (max.message.bytes); lower maxMessageSizeBytes to match it.`,
      { cause: error, isRetryable: false },
    );
  }
  if (type !== undefined && NOT_RETRYABLE.has(type)) {
    return new TransportError(message, { cause: error, isRetryable: false });
  }
  if (name === 'KafkaJSSASLAuthenticationError') {
    return new TransportError(`${message}. Check the SASL mechanism, username and password.`, {
      cause: error,
      isRetryable: false,
    });
  }
  if (
    UNAVAILABLE_NAMES.has(name) ||
    /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH/.test(detail)
  ) {
    return new TransportUnavailableError(message, { cause: error });
  }
  // kafkajs marks broker errors a retry may cure (leader moved, not enough replicas) as retriable.
  if (cause.retriable === true) return new TransportUnavailableError(message, { cause: error });
  return new TransportError(message, { cause: error, isRetryable: false });
}

/**
 * Whether a failed produce would fail alike for any records sent now: the cluster or the way to it
 * is unavailable, or a leader is moving, and kafkajs has retried already. False where the failure
 * may be down to some of the records (too large, invalid, a topic missing or not writable).
 */
export function isRetryableProduceFailure(error: unknown): boolean {
  // kafkajs calls an unknown topic retriable (metadata may lag), but it is the records going to
  // that topic that fail; a send maps it to DestinationNotFoundError.
  if (
    error !== null &&
    typeof error === 'object' &&
    rootCause(error as NativeKafkaError).type === 'UNKNOWN_TOPIC_OR_PARTITION'
  ) {
    return false;
  }
  return mapKafkaError(error, { operation: 'produce' }).isRetryable;
}
