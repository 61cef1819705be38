import {
  DestinationNotFoundError,
  mapNativeError,
  type NativeErrorContext,
  type NativeErrorFacts,
  type TidingsError,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core/transport';

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

/** kafkajs keeps socket errors in its message only: `connect ECONNREFUSED 10.0.0.1:9092`. */
const UNAVAILABLE_DETAIL = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH/;

export interface MapErrorContext extends NativeErrorContext {
  /** What was being done, e.g. `produce to orders`. */
  readonly operation: string;
  /** The destination queue or topic, for DestinationNotFoundError. */
  readonly destination?: string;
  /** Values that must not appear in messages or causes (passwords, broker addresses). */
  readonly secrets?: readonly (string | undefined)[];
}

/** The broker's error type of a kafkajs protocol error (`MESSAGE_TOO_LARGE`), read by shape. */
function typeOf(error: unknown): string | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const type = (error as { type?: unknown }).type;
  return typeof type === 'string' ? type : undefined;
}

/** The Kafka cases; messages keep the form `Kafka: <operation> failed: <detail> (<TYPE>)`. */
function mapKafkaFacts(facts: NativeErrorFacts, context: NativeErrorContext): TidingsError {
  const { root, name, detail, cause } = facts;
  const type = typeOf(root);
  const message = `Kafka: ${context.operation} failed: ${detail}${type ? ` (${type})` : ''}`;
  if (type === 'UNKNOWN_TOPIC_OR_PARTITION' && context.destination !== undefined) {
    return new DestinationNotFoundError(context.destination, { cause });
  }
  if (type !== undefined && TOO_LARGE.has(type)) {
    return new TransportError(
      `${message}. The record exceeds the topic's or broker's size limit (max.message.bytes); lower maxMessageSizeBytes to match it.`,
      { cause, isRetryable: false },
    );
  }
  if (type !== undefined && NOT_RETRYABLE.has(type)) {
    return new TransportError(message, { cause, isRetryable: false });
  }
  if (name === 'KafkaJSSASLAuthenticationError') {
    return new TransportError(`${message}. Check the SASL mechanism, username and password.`, {
      cause,
      isRetryable: false,
    });
  }
  if (UNAVAILABLE_NAMES.has(name) || UNAVAILABLE_DETAIL.test(detail)) {
    return new TransportUnavailableError(message, { cause });
  }
  // kafkajs marks broker errors a retry may cure (leader moved, not enough replicas) as retriable.
  if ((root as { retriable?: unknown } | null)?.retriable === true) {
    return new TransportUnavailableError(message, { cause });
  }
  return new TransportError(message, { cause, isRetryable: false });
}

const KAFKA_ERRORS = { system: 'Kafka', map: mapKafkaFacts };

/** Maps a kafkajs error (or anything thrown beside it) to core's error taxonomy. */
export function mapKafkaError(error: unknown, context: MapErrorContext): TidingsError {
  return mapNativeError(error, context, KAFKA_ERRORS);
}

/** The innermost error of a kafkajs chain ("retries exceeded" wraps the real failure). */
function rootOf(error: unknown): unknown {
  let current = error;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth++) {
    const { originalError, cause } = current as { originalError?: unknown; cause?: unknown };
    const inner = originalError ?? cause;
    if (inner === undefined || inner === null || inner === current) break;
    current = inner;
  }
  return current;
}

/**
 * Whether a failed produce would fail alike for any records sent now: the cluster or the way to it
 * is unavailable, or a leader is moving, and kafkajs has retried already. False where the failure
 * may be down to some of the records (too large, invalid, a topic missing or not writable).
 */
export function isRetryableProduceFailure(error: unknown): boolean {
  // kafkajs calls an unknown topic retriable (metadata may lag), but it is the records going to
  // that topic that fail; a send maps it to DestinationNotFoundError.
  if (typeOf(rootOf(error)) === 'UNKNOWN_TOPIC_OR_PARTITION') return false;
  return mapKafkaError(error, { operation: 'produce' }).isRetryable;
}
