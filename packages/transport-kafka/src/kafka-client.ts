/**
 * The client seam: the only files that import kafkajs are this one (the client: producer, admin),
 * group-consumer.ts (a consumer in a group) and partitioners.ts (which partition a record goes to,
 * which partitions a member reads). The transport speaks to Kafka through the small interface
 * below, so moving to another client library means rewriting those files (and the error table in
 * errors.ts), nothing else.
 */
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  type Admin,
  type IHeaders,
  Kafka,
  type LogEntry,
  logLevel,
  type Message,
  type Producer,
  type SASLOptions,
} from 'kafkajs';
import { GroupConsumer } from './group-consumer.js';
import type { KafkaBrokerAddress, KafkaSaslOptions } from './options.js';
import { spreadingPartitioner } from './partitioners.js';

export type ClientLogLevel = 'debug' | 'info' | 'warn' | 'error';
export type ClientLog = (
  level: ClientLogLevel,
  message: string,
  fields: Record<string, unknown>,
) => void;

export interface ClientConfig {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl: boolean | import('node:tls').ConnectionOptions;
  readonly sasl: KafkaSaslOptions | undefined;
  readonly mapBrokerAddress: ((advertised: KafkaBrokerAddress) => KafkaBrokerAddress) | undefined;
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly retries: number;
  readonly log: ClientLog;
}

export interface OutgoingRecord {
  readonly topic: string;
  readonly key: string;
  readonly value: Uint8Array;
  readonly headers: Readonly<Record<string, string>>;
  /**
   * True: records with this key must share a partition (the key is an ordering key), so the key
   * is hashed as Kafka's Java client does. False: any partition will do.
   */
  readonly keyed: boolean;
}

export interface IncomingRecord {
  readonly offset: string;
  readonly key: string | null;
  readonly value: Uint8Array;
  readonly headers: Record<string, string>;
}

export interface RecordBatch {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly IncomingRecord[];
}

/** What a batch handler may do while it works. None of these reject. */
export interface BatchControl {
  /** False once the consumer stops or the group rebalances: take no more records from this batch. */
  isActive(): boolean;
  /** Keeps the group membership alive during a long batch; resolves false when the group rebalances. */
  heartbeat(): Promise<boolean>;
  /** The next fetch of this partition starts after this offset (nothing is committed by it). */
  markFetched(offset: string): void;
  /** Stops fetching this partition until the function it returns is called. */
  pause(): () => void;
}

export interface TopicSubscription {
  readonly topic: string;
  /** Where a group with no committed position starts. */
  readonly from: 'earliest' | 'latest';
}

export interface ConsumerConfig {
  readonly groupId: string;
  readonly topics: readonly TopicSubscription[];
  /** Batches (partitions) handled at once. */
  readonly partitionsConcurrently: number;
  readonly maxWaitTimeInMs: number;
  readonly maxBytesPerPartition: number;
  readonly sessionTimeoutMs: number;
  readonly rebalanceTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  /** Positions are committed at most this often (and at stop); 0 commits after every batch. */
  readonly commitIntervalMs: number;
  /** Handles one partition's batch. The next batch of that partition waits for it. Must not reject. */
  onBatch(batch: RecordBatch, control: BatchControl): Promise<void>;
  /**
   * The group is meant to have this member alone (an instance's reply group). Every partition goes
   * to the member that has been in it longest, none to the others, and `onShared` is called at a
   * join where this member shares the group: with `owner` false when it got nothing, true when it
   * kept everything (known only to the member that assigns, the group leader).
   */
  readonly exclusive?: boolean;
  onShared?(owner: boolean): void;
  /**
   * Called after every group join with this member's partitions, before the first fetch.
   * `seek` sets where a partition is read from next. `hold` keeps partitions from being fetched
   * until the function it returns is called (while the consumer is not paused or stopped); stop
   * waits for that call, so a commit made before it is not lost to the stop.
   */
  onAssigned?(
    assignment: Readonly<Record<string, readonly number[]>>,
    seek: (topic: string, partition: number, offset: string) => void,
    hold: (partitions: ReadonlyArray<{ topic: string; partition: number }>) => () => void,
  ): void;
}

export interface ClientConsumer {
  /** Connects and joins the group in the background; resolves once connected (not joined). */
  start(): Promise<void>;
  /** Resolves at the first join of the group (partitions assigned, positions set) or at stop. */
  joined(): Promise<void>;
  /** Stops fetching new batches; batches being handled finish. */
  pause(): void;
  /** Commits positions outside a batch (offset = next record to read). */
  commit(
    positions: ReadonlyArray<{ topic: string; partition: number; offset: string }>,
  ): Promise<void>;
  /** Records a position, committed with the next periodic commit (`commitIntervalMs`) or at stop. */
  recordPosition(topic: string, partition: number, nextOffset: string): void;
  /** Commits the recorded positions now; false if that failed. */
  flush(): Promise<boolean>;
  /**
   * Waits for batches being handled, commits the recorded positions, leaves the group. A join under
   * way cannot be cut short: a member that disconnects instead stays in the group until its
   * session expires, holding up every join meanwhile (a restart's among them). So a stop during a
   * join resolves at once, and the join completes in the background with the member leaving right
   * after; with `waitForJoin`, the stop waits for that.
   */
  stop(options?: { readonly waitForJoin?: boolean }): Promise<void>;
}

export interface TopicSpec {
  readonly topic: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly config?: Readonly<Record<string, string>>;
}

export interface KafkaClient {
  /**
   * One attempt to reach the cluster: connects to one of the brokers, and disconnects. No retries
   * (and nothing left trying once it has failed), so the caller decides how long to keep trying.
   */
  reach(): Promise<void>;
  /** Connects the producer and the admin client, retrying as `retries` says. */
  connect(): Promise<void>;
  /** Produces with acks from all in-sync replicas; resolves once the cluster has them. */
  produce(records: readonly OutgoingRecord[]): Promise<void>;
  /** Creates missing topics (or has the cluster auto-create them where it cannot create them). */
  ensureTopics(specs: readonly TopicSpec[]): Promise<void>;
  /** Names of the topics that exist now. */
  listTopics(): Promise<Set<string>>;
  /** Offset of the next record to be written, per partition. */
  endOffsets(topic: string): Promise<Map<number, string>>;
  /** Offset of the oldest record still kept, per partition. */
  startOffsets(topic: string): Promise<Map<number, string>>;
  /**
   * Sets a group's positions from outside it. Only works while the group has no members, and not
   * on every cluster; callers treat a failure as "not done".
   */
  setGroupOffsets(
    groupId: string,
    topic: string,
    positions: ReadonlyMap<number, string>,
  ): Promise<void>;
  /** The group's committed position per partition; undefined where it has none. */
  committedOffsets(groupId: string, topic: string): Promise<Map<number, string | undefined>>;
  consumer(config: ConsumerConfig): ClientConsumer;
  close(): Promise<void>;
}

const saslOf = (sasl: KafkaSaslOptions): SASLOptions => ({
  mechanism: sasl.mechanism,
  username: sasl.username,
  password: sasl.password,
});

/** kafkajs behind the `KafkaClient` seam: one producer and one admin client, shared. */
class KafkajsClient implements KafkaClient {
  /** Closed: kafkajs lines still coming (a retry under way when it closed) are noise now. */
  private closed = false;
  private readonly kafka: Kafka;
  private readonly admin: Admin;
  private producer: Producer | undefined;
  private readonly keyedMessages = new WeakSet<Message>();
  /**
   * librdkafka's mock cluster (and some managed offerings) cannot create topics through the admin
   * API; after the first such failure, topics are auto-created through a metadata request.
   */
  private createTopicsUnavailable = false;
  /** Reaches the cluster without retrying: the caller's loop retries, within its own deadline. */
  private probe: Admin | undefined;

  constructor(private readonly config: ClientConfig) {
    this.kafka = this.kafkaWith(config.retries);
    this.admin = this.kafka.admin();
  }

  private kafkaWith(retries: number): Kafka {
    const { config } = this;
    return new Kafka({
      clientId: config.clientId,
      brokers: [...config.brokers],
      ssl: config.ssl,
      ...(config.sasl ? { sasl: saslOf(config.sasl) } : {}),
      connectionTimeout: config.connectionTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      retry: { retries, initialRetryTime: 100, maxRetryTime: 5_000 },
      logLevel: logLevel.INFO,
      // kafkajs logs every connection refused, every retry and expected protocol answers (a
      // rebalance in progress) as warnings and errors: dozens of lines for one unreachable broker.
      // What matters reaches the caller as an error, or is logged by this file; the rest is debug.
      logCreator:
        () =>
        ({ log }: LogEntry) => {
          if (this.closed) return;
          const { message, timestamp: _t, logger: _l, ...fields } = log;
          config.log('debug', `kafkajs: ${message}`, fields);
        },
      // Our own sockets: Nagle off (each hop would otherwise wait for delayed ACKs), and an
      // optional rewrite of advertised broker addresses.
      socketFactory: ({ host, port, ssl, onConnect }) => {
        const target = config.mapBrokerAddress?.({ host, port }) ?? { host, port };
        const socket = ssl
          ? tlsConnect(
              { host: target.host, port: target.port, servername: host, ...ssl },
              onConnect,
            )
          : netConnect({ host: target.host, port: target.port, noDelay: true }, onConnect);
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 60_000);
        return socket;
      },
    });
  }

  async reach(): Promise<void> {
    this.probe ??= this.kafkaWith(0).admin();
    try {
      await this.probe.connect();
    } finally {
      await this.probe.disconnect().catch(() => {});
    }
  }

  async connect(): Promise<void> {
    this.producer = this.kafka.producer({
      createPartitioner: spreadingPartitioner(this.keyedMessages),
      allowAutoTopicCreation: false,
      retry: { retries: this.config.retries, initialRetryTime: 100, maxRetryTime: 5_000 },
    });
    await Promise.all([this.producer.connect(), this.admin.connect()]);
  }

  async produce(records: readonly OutgoingRecord[]): Promise<void> {
    const { producer } = this;
    if (producer === undefined) throw new Error('The Kafka client is not connected.');
    const byTopic = new Map<string, Message[]>();
    for (const record of records) {
      let messages = byTopic.get(record.topic);
      if (messages === undefined) {
        messages = [];
        byTopic.set(record.topic, messages);
      }
      const { value } = record;
      const message: Message = {
        key: record.key,
        value: Buffer.isBuffer(value)
          ? value
          : Buffer.from(value.buffer, value.byteOffset, value.byteLength),
        // kafkajs only reads them.
        headers: record.headers as IHeaders,
      };
      if (record.keyed) this.keyedMessages.add(message);
      messages.push(message);
    }
    await producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
    });
  }

  async ensureTopics(specs: readonly TopicSpec[]): Promise<void> {
    if (specs.length === 0) return;
    if (!this.createTopicsUnavailable) {
      try {
        await this.admin.createTopics({
          waitForLeaders: true,
          topics: specs.map((spec) => ({
            topic: spec.topic,
            numPartitions: spec.partitions,
            replicationFactor: spec.replicationFactor,
            ...(spec.config
              ? {
                  configEntries: Object.entries(spec.config).map(([name, value]) => ({
                    name,
                    value,
                  })),
                }
              : {}),
          })),
        });
        return;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        if (
          !/not found in the cached metadata|does not support|UNSUPPORTED_VERSION/i.test(message)
        ) {
          throw error;
        }
        this.createTopicsUnavailable = true;
        this.config.log(
          'info',
          'The cluster cannot create topics through the admin API; relying on auto-creation',
          { reason: message },
        );
      }
    }
    await this.admin.fetchTopicMetadata({ topics: specs.map((spec) => spec.topic) });
  }

  async listTopics(): Promise<Set<string>> {
    return new Set(await this.admin.listTopics());
  }

  async endOffsets(topic: string): Promise<Map<number, string>> {
    const offsets = await this.admin.fetchTopicOffsets(topic);
    return new Map(offsets.map((o) => [o.partition, o.offset]));
  }

  async startOffsets(topic: string): Promise<Map<number, string>> {
    const offsets = await this.admin.fetchTopicOffsets(topic);
    return new Map(offsets.map((o) => [o.partition, o.low]));
  }

  async setGroupOffsets(
    groupId: string,
    topic: string,
    positions: ReadonlyMap<number, string>,
  ): Promise<void> {
    await this.admin.setOffsets({
      groupId,
      topic,
      partitions: [...positions].map(([partition, offset]) => ({ partition, offset })),
    });
  }

  async committedOffsets(groupId: string, topic: string): Promise<Map<number, string | undefined>> {
    const [entry] = await this.admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map(
      (entry?.partitions ?? []).map((p) => [
        p.partition,
        p.offset === '-1' || p.offset === '' ? undefined : p.offset,
      ]),
    );
  }

  consumer(consumerConfig: ConsumerConfig): ClientConsumer {
    return new GroupConsumer(this.kafka, consumerConfig, this.config.log, this.config.retries);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([
      this.producer?.disconnect(),
      this.admin.disconnect(),
      this.probe?.disconnect(),
    ]);
  }
}

export function createKafkaClient(config: ClientConfig): KafkaClient {
  return new KafkajsClient(config);
}
