import type { ConnectionOptions } from 'node:tls';
import { ConfigurationError } from '@tidings/core';
import { checkTimerMs, checkWholeNumber } from '@tidings/core/transport';

/** SASL credentials. Never logged; errors that mention the connection are redacted. */
export interface KafkaSaslOptions {
  readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  readonly username: string;
  readonly password: string;
}

/** A broker address as the cluster advertises it, or as the client should dial it. */
export interface KafkaBrokerAddress {
  readonly host: string;
  readonly port: number;
}

export interface KafkaTransportOptions {
  /** Bootstrap brokers, `host:port`. Required. */
  readonly brokers: readonly string[];
  /**
   * Client id sent to the brokers (shows up in broker logs and quotas).
   * @default 'tidings'
   */
  readonly clientId?: string;
  /**
   * TLS: `true` for the system CAs, or Node's TLS options.
   * @default false
   */
  readonly ssl?: boolean | ConnectionOptions;
  /**
   * SASL authentication.
   * @default undefined (none)
   */
  readonly sasl?: KafkaSaslOptions;
  /**
   * Rewrites the address the client dials for a broker. For clusters whose advertised listeners
   * are not reachable from here (port forwarding, tunnels, proxies).
   * @default undefined (dial the advertised address)
   */
  readonly mapBrokerAddress?: (advertised: KafkaBrokerAddress) => KafkaBrokerAddress;
  /**
   * Prefix of every topic and consumer group this transport creates or uses (a namespace on a
   * shared cluster, e.g. `staging.`).
   * @default ''
   */
  readonly topicPrefix?: string;
  /**
   * Prefix of event topics: events of type `T` go to topic `<topicPrefix><eventTopicPrefix>T`.
   * @default 'event.'
   */
  readonly eventTopicPrefix?: string;
  /**
   * Partitions of the topics the transport creates (input, instance, error and event topics).
   * Ordering holds per key within a partition; more partitions, more parallelism.
   * Ignored when the cluster auto-creates topics with its own defaults.
   * @default 6
   */
  readonly partitions?: number;
  /**
   * Replication factor of the topics the transport creates; -1 takes the broker's default.
   * @default -1
   */
  readonly replicationFactor?: number;
  /**
   * How long records stay in an instance's reply topic (`retention.ms`). Instance topics of
   * instances that are gone empty themselves after this; the topic itself stays until deleted.
   * @default 86_400_000 (1 day)
   */
  readonly instanceTopicRetentionMs?: number;
  /**
   * Longest a fetch waits for data when there is none. Real brokers answer as soon as data
   * arrives, so this bounds idle polling rather than latency there; brokers that wait the fetch
   * out (librdkafka's mock cluster) add up to this much latency to every hop.
   * @default 100
   */
  readonly maxWaitTimeInMs?: number;
  /**
   * Most bytes fetched per partition per request.
   * @default 1_048_576
   */
  readonly maxBytesPerPartition?: number;
  /**
   * Consumer group session timeout: an instance that stops heartbeating this long loses its
   * partitions to the others.
   * @default 30_000
   */
  readonly sessionTimeoutMs?: number;
  /**
   * Session timeout of an instance's reply group (the consumer group of its instance topic, meant
   * to have that instance alone). After a crash, a restart with the same instance id receives its
   * replies once the crashed member's session has expired: this long. Shorter than
   * `sessionTimeoutMs`, since no other member waits to take the replies over; a process stalled
   * this long rejoins its reply group, and replies wait in the topic meanwhile. Kafka refuses
   * values under the broker's `group.min.session.timeout.ms` (6 s by default). Its heartbeat is
   * the smaller of `heartbeatIntervalMs` and a third of this.
   * @default 6_000
   */
  readonly instanceSessionTimeoutMs?: number;
  /**
   * How long the group waits for members to rejoin during a rebalance.
   * @default 60_000
   */
  readonly rebalanceTimeoutMs?: number;
  /**
   * Heartbeat interval; keep it well under a third of `sessionTimeoutMs`.
   * @default 3_000
   */
  readonly heartbeatIntervalMs?: number;
  /**
   * Handled positions are committed at most this often, and always when the endpoint stops or
   * its group rebalances; 0 commits after every batch. A crash replays at most this window.
   * @default 200
   */
  readonly commitIntervalMs?: number;
  /**
   * How long a consumer waits for the records it handed over to finish before it leaves its
   * group: when a subscription change replaces it, and at close. Records still running then run
   * on; the consumer that reads their partitions next starts none of their keys before they end.
   * @default 30_000
   */
  readonly drainTimeoutMs?: number;
  /**
   * Largest message (body plus headers) accepted; core refuses larger ones before sending.
   * Keep it under the topic's `max.message.bytes` (1 MB by default on Kafka).
   * @default 1_000_000
   */
  readonly maxMessageSizeBytes?: number;
  /**
   * Most records sent in one produce request; more wait for the next one.
   * @default 2_000
   */
  readonly maxBatchRecords?: number;
  /**
   * Header whose value, when present, becomes the record key (records with one key keep their
   * order). Without it the key is the message id.
   * @default 'ordering-key'
   */
  readonly orderingKeyHeader?: string;
  /**
   * How long an endpoint's start keeps trying to reach the cluster (every broker of `brokers`,
   * again and again) before it fails with `TransportUnavailableError`. Each attempt is bounded by
   * `connectionTimeoutMs`.
   * @default 10_000
   */
  readonly connectTimeoutMs?: number;
  /**
   * Connection timeout of one attempt to reach one broker.
   * @default 3_000
   */
  readonly connectionTimeoutMs?: number;
  /**
   * Request timeout.
   * @default 30_000
   */
  readonly requestTimeoutMs?: number;
  /**
   * Retries of a failed request (connection lost, leader moved) before it fails.
   * @default 8
   */
  readonly retries?: number;
}

export const kafkaTransportDefaults = {
  clientId: 'tidings',
  ssl: false,
  topicPrefix: '',
  eventTopicPrefix: 'event.',
  partitions: 6,
  replicationFactor: -1,
  instanceTopicRetentionMs: 86_400_000,
  maxWaitTimeInMs: 100,
  maxBytesPerPartition: 1_048_576,
  sessionTimeoutMs: 30_000,
  instanceSessionTimeoutMs: 6_000,
  rebalanceTimeoutMs: 60_000,
  heartbeatIntervalMs: 3_000,
  commitIntervalMs: 200,
  drainTimeoutMs: 30_000,
  maxMessageSizeBytes: 1_000_000,
  maxBatchRecords: 2_000,
  orderingKeyHeader: 'ordering-key',
  connectTimeoutMs: 10_000,
  connectionTimeoutMs: 3_000,
  requestTimeoutMs: 30_000,
  retries: 8,
} as const satisfies Omit<Required<KafkaTransportOptions>, 'brokers' | 'sasl' | 'mapBrokerAddress'>;

/** Every option with its default applied, checked. */
export type ResolvedKafkaOptions = Required<
  Omit<KafkaTransportOptions, 'sasl' | 'mapBrokerAddress'>
> &
  Pick<KafkaTransportOptions, 'sasl' | 'mapBrokerAddress'>;

/** Applies the defaults and checks every value; bad input is a `ConfigurationError`. */
export function resolveKafkaOptions(options: KafkaTransportOptions): ResolvedKafkaOptions {
  if (options === undefined || options === null) {
    throw new ConfigurationError('createKafkaTransport needs options: { brokers: ["host:9092"] }.');
  }
  const brokers = options.brokers;
  if (
    !Array.isArray(brokers) ||
    brokers.length === 0 ||
    brokers.some((b) => typeof b !== 'string' || !b.includes(':'))
  ) {
    throw new ConfigurationError(
      'brokers must be a non-empty array of "host:port" strings, e.g. ["127.0.0.1:9092"].',
    );
  }
  const resolved = {
    ...kafkaTransportDefaults,
    ...stripUndefined(options),
  } as ResolvedKafkaOptions;
  const positive: Array<keyof typeof kafkaTransportDefaults> = [
    'partitions',
    'instanceTopicRetentionMs',
    'maxWaitTimeInMs',
    'maxBytesPerPartition',
    'sessionTimeoutMs',
    'instanceSessionTimeoutMs',
    'rebalanceTimeoutMs',
    'heartbeatIntervalMs',
    'maxMessageSizeBytes',
    'maxBatchRecords',
    'connectionTimeoutMs',
    'requestTimeoutMs',
  ];
  for (const key of positive) checkWholeNumber(key, resolved[key]);
  // A timer between commits: Node.js fires one of 2^31 ms or more at once.
  checkTimerMs('commitIntervalMs', resolved.commitIntervalMs, 0);
  checkTimerMs('connectTimeoutMs', resolved.connectTimeoutMs, 1);
  checkWholeNumber('drainTimeoutMs', resolved.drainTimeoutMs, 0);
  checkWholeNumber('retries', resolved.retries, 0);
  if (
    !Number.isInteger(resolved.replicationFactor) ||
    resolved.replicationFactor === 0 ||
    resolved.replicationFactor < -1
  ) {
    throw new ConfigurationError(
      `replicationFactor must be -1 (broker default) or a positive integer, got ${resolved.replicationFactor}.`,
    );
  }
  if (resolved.heartbeatIntervalMs >= resolved.sessionTimeoutMs) {
    throw new ConfigurationError('heartbeatIntervalMs must be smaller than sessionTimeoutMs.');
  }
  return resolved;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
