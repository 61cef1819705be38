/**
 * The client seam: the only file that imports kafkajs. The transport speaks to Kafka through the
 * small interface below, so moving to another client library means rewriting this file (and the
 * error table in errors.ts), nothing else.
 */
import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  AssignerProtocol,
  type Consumer,
  type EachBatchPayload,
  type ICustomPartitioner,
  type IHeaders,
  Kafka,
  type LogEntry,
  logLevel,
  type Message,
  type PartitionAssigner,
  Partitioners,
  type Producer,
  type SASLOptions,
} from 'kafkajs';
import type { KafkaBrokerAddress, KafkaSaslOptions } from './options.js';

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

/** Starts a record key or header value that was not UTF-8: the base64 of its bytes follows. */
const BINARY_PREFIX = 'base64:';

/**
 * Bytes as text: UTF-8 when they are, else `base64:` and their base64. Decoding them with
 * replacement characters would make distinct values equal (two binary message ids both `\uFFFD`),
 * which defeats deduplication by id; this keeps them apart.
 */
function textOf(bytes: Buffer): string {
  return isUtf8(bytes) ? bytes.toString('utf8') : `${BINARY_PREFIX}${bytes.toString('base64')}`;
}

function decodeHeaders(headers: IHeaders | undefined): Record<string, string> {
  const decoded: Record<string, string> = {};
  if (headers === undefined) return decoded;
  for (const name in headers) {
    const raw = headers[name];
    // A repeated header arrives as an array: the last one wins, as in a map.
    const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    // Kafka allows a header without a value (length -1, decoded as null): a header with no value.
    if (value === undefined || value === null) continue;
    decoded[name] = typeof value === 'string' ? value : textOf(value);
  }
  return decoded;
}

const EMPTY = new Uint8Array(0);

/**
 * Round robin over the members that read each topic, as Kafka's Java RoundRobinAssignor does.
 * kafkajs's own spreads the leader's topics over every member: in a rolling deploy that adds an
 * event handler, an old leader never assigns the new event's topic, and a new leader hands its
 * partitions to old members, which drop them. Same protocol name and metadata as kafkajs's, so
 * members of either kind agree on a protocol.
 */
const subscriberRoundRobin: PartitionAssigner = ({ cluster }) => ({
  name: 'RoundRobinAssigner',
  version: 0,
  async assign({ members }) {
    const readers = new Map<string, string[]>();
    for (const member of members) {
      const metadata = AssignerProtocol.MemberMetadata.decode(member.memberMetadata);
      for (const topic of metadata?.topics ?? []) {
        readers.set(topic, [...(readers.get(topic) ?? []), member.memberId]);
      }
    }
    // Partition counts of topics only other members read.
    await cluster.addMultipleTargetTopics([...readers.keys()]);
    const assignment = new Map<string, Record<string, number[]>>();
    let turn = 0;
    for (const topic of [...readers.keys()].sort()) {
      const ids = (readers.get(topic) as string[]).sort();
      for (const { partitionId } of cluster.findTopicPartitionMetadata(topic)) {
        const memberId = ids[turn++ % ids.length] as string;
        let topics = assignment.get(memberId);
        if (topics === undefined) {
          topics = {};
          assignment.set(memberId, topics);
        }
        const partitions = topics[topic] ?? [];
        partitions.push(partitionId);
        topics[topic] = partitions;
      }
    }
    return members.map(({ memberId }) => ({
      memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({
        version: 0,
        assignment: assignment.get(memberId) ?? {},
        userData: Buffer.alloc(0),
      }),
    }));
  },
  protocol({ topics }) {
    return {
      name: 'RoundRobinAssigner',
      metadata: AssignerProtocol.MemberMetadata.encode({
        version: 0,
        topics,
        userData: Buffer.alloc(0),
      }),
    };
  },
});

/** Who a member of an exclusive group is: when its consumer was made, and a random token. */
interface Claim {
  readonly since: number;
  readonly token: string;
}

const claimOf = (userData: Buffer | undefined): Claim => {
  const [since, token] = (userData?.toString('utf8') ?? '').split('/');
  // A member without a claim (a version before claims) counts as the oldest.
  return { since: Number(since) || 0, token: token ?? '' };
};

/**
 * For groups meant to have one member (an instance's reply group): every partition to the member
 * that has been in the group longest, none to the others. A second process that was given the same
 * instance id then takes no replies from the first (round robin would split them, each side
 * dropping the other's as unmatched), and takes over once the first leaves. Same protocol name as
 * `subscriberRoundRobin`, so members of versions before this one still join.
 */
const longestMember =
  (self: Claim, onShared: (owner: boolean) => void): PartitionAssigner =>
  ({ cluster }) => ({
    name: 'RoundRobinAssigner',
    version: 0,
    async assign({ members, topics }) {
      const claims = members.map((member) => ({
        memberId: member.memberId,
        claim: claimOf(AssignerProtocol.MemberMetadata.decode(member.memberMetadata)?.userData),
      }));
      const oldest = claims.reduce((best, next) =>
        next.claim.since < best.claim.since ||
        (next.claim.since === best.claim.since && next.memberId < best.memberId)
          ? next
          : best,
      );
      await cluster.addMultipleTargetTopics(topics);
      const all: Record<string, number[]> = {};
      for (const topic of topics) {
        all[topic] = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId);
      }
      if (members.length > 1) onShared(oldest.claim.token === self.token);
      return members.map(({ memberId }) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment: memberId === oldest.memberId ? all : {},
          userData: Buffer.alloc(0),
        }),
      }));
    },
    protocol({ topics }) {
      return {
        name: 'RoundRobinAssigner',
        metadata: AssignerProtocol.MemberMetadata.encode({
          version: 0,
          topics,
          userData: Buffer.from(`${self.since}/${self.token}`),
        }),
      };
    },
  });

/** A consumer kafkajs left stopped is started again after this, then twice as long each time. */
const FIRST_RESTART_DELAY_MS = 1_000;
const MAX_RESTART_DELAY_MS = 30_000;

/** A failed commit is tried again after this (or `commitIntervalMs`, if longer). */
const COMMIT_RETRY_MS = 500;
/** Commits tried at stop before the consumer leaves its group without them. */
const STOP_COMMIT_ATTEMPTS = 5;

/** Heartbeat calls within this many ms of the last one share its answer. */
const HEARTBEAT_COALESCE_MS = 100;

/**
 * Keyed records are hashed like Kafka's Java client does (murmur2), so other producers agree on
 * their partition; the rest go round-robin over the partitions with a leader. kafkajs's murmur2
 * runs on 64-bit emulation and costs more per record than the rest of the produce path.
 */
function spreadingPartitioner(keyed: WeakSet<Message>): ICustomPartitioner {
  return () => {
    const byKey = Partitioners.DefaultPartitioner();
    const counters = new Map<string, number>();
    return (args) => {
      if (keyed.has(args.message)) return byKey(args);
      const partitions = args.partitionMetadata;
      const start = counters.get(args.topic) ?? Math.floor(Math.random() * partitions.length);
      counters.set(args.topic, start + 1);
      for (let i = 0; i < partitions.length; i++) {
        const candidate = partitions[(start + i) % partitions.length];
        if (candidate !== undefined && candidate.leader >= 0) return candidate.partitionId;
      }
      // No partition has a leader right now: any will do, the produce is retried on fresh metadata.
      return partitions[start % partitions.length]?.partitionId ?? 0;
    };
  };
}

export function createKafkaClient(config: ClientConfig): KafkaClient {
  /** Closed: kafkajs lines still coming (a retry under way when it closed) are noise now. */
  let closed = false;
  const kafkaWith = (retries: number) =>
    new Kafka({
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
          if (closed) return;
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
  const kafka = kafkaWith(config.retries);
  let producer: Producer | undefined;
  const keyedMessages = new WeakSet<Message>();
  const admin = kafka.admin();
  // librdkafka's mock cluster (and some managed offerings) cannot create topics through the admin
  // API; after the first such failure, topics are auto-created through a metadata request.
  let createTopicsUnavailable = false;

  const autoCreate = async (topics: string[]) => {
    await admin.fetchTopicMetadata({ topics });
  };

  /** Reaches the cluster without retrying: the caller's loop retries, within its own deadline. */
  let probe: ReturnType<Kafka['admin']> | undefined;

  return {
    async reach() {
      probe ??= kafkaWith(0).admin();
      try {
        await probe.connect();
      } finally {
        await probe.disconnect().catch(() => {});
      }
    },

    async connect() {
      producer = kafka.producer({
        createPartitioner: spreadingPartitioner(keyedMessages),
        allowAutoTopicCreation: false,
        retry: { retries: config.retries, initialRetryTime: 100, maxRetryTime: 5_000 },
      });
      await Promise.all([producer.connect(), admin.connect()]);
    },

    async produce(records) {
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
        if (record.keyed) keyedMessages.add(message);
        messages.push(message);
      }
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
    },

    async ensureTopics(specs) {
      if (specs.length === 0) return;
      if (!createTopicsUnavailable) {
        try {
          await admin.createTopics({
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
          createTopicsUnavailable = true;
          config.log(
            'info',
            'The cluster cannot create topics through the admin API; relying on auto-creation',
            {
              reason: message,
            },
          );
        }
      }
      await autoCreate(specs.map((spec) => spec.topic));
    },

    async listTopics() {
      return new Set(await admin.listTopics());
    },

    async endOffsets(topic) {
      const offsets = await admin.fetchTopicOffsets(topic);
      return new Map(offsets.map((o) => [o.partition, o.offset]));
    },

    async startOffsets(topic) {
      const offsets = await admin.fetchTopicOffsets(topic);
      return new Map(offsets.map((o) => [o.partition, o.low]));
    },

    async setGroupOffsets(groupId, topic, positions) {
      await admin.setOffsets({
        groupId,
        topic,
        partitions: [...positions].map(([partition, offset]) => ({ partition, offset })),
      });
    },

    async committedOffsets(groupId, topic) {
      const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
      return new Map(
        (entry?.partitions ?? []).map((p) => [
          p.partition,
          p.offset === '-1' || p.offset === '' ? undefined : p.offset,
        ]),
      );
    },

    consumer(consumerConfig) {
      return createConsumer(kafka, consumerConfig, config.log, config.retries);
    },

    async close() {
      closed = true;
      await Promise.allSettled([producer?.disconnect(), admin.disconnect(), probe?.disconnect()]);
    },
  };
}

function createConsumer(
  kafka: Kafka,
  config: ConsumerConfig,
  log: ClientLog,
  retries: number,
): ClientConsumer {
  let stopped = false;
  /** Set by the assigner (this member leads the group) when another member shares the group. */
  let sharedAsOwner: boolean | undefined;
  const consumer: Consumer = kafka.consumer({
    groupId: config.groupId,
    partitionAssigners: [
      config.exclusive
        ? longestMember({ since: Date.now(), token: randomUUID() }, (owner) => {
            sharedAsOwner = owner;
          })
        : subscriberRoundRobin,
    ],
    maxWaitTimeInMs: config.maxWaitTimeInMs,
    maxBytesPerPartition: config.maxBytesPerPartition,
    sessionTimeout: config.sessionTimeoutMs,
    rebalanceTimeout: config.rebalanceTimeoutMs,
    heartbeatInterval: config.heartbeatIntervalMs,
    allowAutoTopicCreation: false,
    retry: {
      retries,
      initialRetryTime: 100,
      maxRetryTime: 5_000,
      // A consumer that lost the cluster for longer than its retries starts over rather than
      // ending for good: an endpoint keeps receiving once the cluster is back. Not after stop:
      // kafkajs asks after its crash's own disconnect, which a stop meanwhile does not cancel.
      restartOnFailure: async (error) => {
        if (stopped) return false;
        log('warn', 'The consumer failed; restarting it', {
          groupId: config.groupId,
          error: error.message,
        });
        return true;
      },
    },
  });
  let paused = false;
  let running: Promise<void> | undefined;
  /** `run` has not resolved: the group join is under way. */
  let joining = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let restartDelayMs = FIRST_RESTART_DELAY_MS;
  const topics = config.topics.map((t) => t.topic);
  // Positions recorded but not committed yet, by topic and partition; committed together.
  const pending = new Map<string, { topic: string; partition: number; offset: string }>();
  let flushTimer: NodeJS.Timeout | undefined;
  let flushing: Promise<boolean> = Promise.resolve(true);
  /** Joined, and not crashed since: kafkajs takes commits. */
  let live = false;
  /** Disconnected at stop: nothing can be committed any more. */
  let disconnected = false;
  /** Commits made through `commit`, not yet settled. */
  const commits = new Set<Promise<void>>();
  /** Partitions held by `onAssigned`, not released yet: what releases them may still commit. */
  const holds = new Set<Promise<void>>();
  /** How many holds not released yet each partition (`topic|partition`) is under. */
  const heldCounts = new Map<string, number>();
  let markJoined: () => void = () => {};
  const joined = new Promise<void>((resolve) => {
    markJoined = resolve;
  });

  const warnCommit = (error: unknown) =>
    log('warn', 'Could not commit positions; trying again', {
      groupId: config.groupId,
      error: error instanceof Error ? error.message : String(error),
    });

  /**
   * Commits what is pending, one commit at a time so positions never go backwards. A position
   * stays pending until a commit of it succeeds (a failed one is tried again after
   * `COMMIT_RETRY_MS`); one recorded meanwhile replaces it, so an older position never overwrites
   * a newer one.
   */
  const flush = (): Promise<boolean> => {
    clearTimeout(flushTimer);
    flushTimer = undefined;
    flushing = flushing.then(async () => {
      if (pending.size === 0) return true;
      if (disconnected) return false;
      // Crashed and not joined again: kafkajs would drop the commit without a word.
      if (!live) return false;
      const positions = [...pending.values()];
      try {
        await consumer.commitOffsets(positions);
      } catch (error) {
        warnCommit(error);
        if (!disconnected) {
          flushTimer ??= setTimeout(
            () => void flush(),
            Math.max(config.commitIntervalMs, COMMIT_RETRY_MS),
          );
        }
        return false;
      }
      for (const position of positions) {
        const key = `${position.topic}|${position.partition}`;
        if (pending.get(key) === position) pending.delete(key);
      }
      return true;
    });
    return flushing;
  };

  /**
   * kafkajs restarts a consumer after errors it retries, and leaves it stopped after the others
   * (an authorization refused, say): the endpoint would receive nothing until restarted. Such an
   * error may be fixed outside (an ACL granted), so the consumer is started again, less often each
   * time until it joins.
   */
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    live = false;
    if (payload.restart || stopped) return;
    log('error', 'The consumer stopped on an error the client does not retry; starting it again', {
      groupId: config.groupId,
      error: payload.error.message,
      inMs: restartDelayMs,
    });
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (!stopped) running = run();
    }, restartDelayMs);
    restartDelayMs = Math.min(2 * restartDelayMs, MAX_RESTART_DELAY_MS);
  });

  // Partitions are about to be given back: commit what is done while this generation owns them.
  consumer.on(consumer.events.REBALANCING, () => void flush());

  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    restartDelayMs = FIRST_RESTART_DELAY_MS;
    if (paused) consumer.pause(topics.map((topic) => ({ topic })));
    const assigned = event.payload.memberAssignment;
    // Positions of partitions another member owns now are its to commit; those still ours are
    // committed by this generation (a commit of the last one failed, or the consumer restarted).
    for (const [key, position] of pending) {
      if (!assigned[position.topic]?.includes(position.partition)) pending.delete(key);
    }
    live = true;
    if (pending.size > 0) setImmediate(() => void flush());
    // A join that completed after stop (it was under way then): the member leaves right away.
    if (stopped) return;
    if (config.exclusive) {
      const owner = Object.values(assigned).some((partitions) => partitions.length > 0);
      if (!owner || sharedAsOwner !== undefined) config.onShared?.(owner);
      sharedAsOwner = undefined;
    }
    config.onAssigned?.(
      event.payload.memberAssignment,
      (topic, partition, offset) => consumer.seek({ topic, partition, offset }),
      (held) => {
        const byTopic = new Map<string, number[]>();
        for (const { topic, partition } of held) {
          byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
        }
        // Paused as a whole (stopping): a pause by partition would undo that (kafkajs).
        if (!paused && !stopped) {
          consumer.pause([...byTopic].map(([topic, partitions]) => ({ topic, partitions })));
        }
        for (const { topic, partition } of held) {
          const key = `${topic}|${partition}`;
          heldCounts.set(key, (heldCounts.get(key) ?? 0) + 1);
        }
        let released: () => void = () => {};
        const holding = new Promise<void>((resolve) => {
          released = resolve;
        });
        holds.add(holding);
        return () => {
          holds.delete(holding);
          released();
          // Held again by a later join: that one lets it go.
          const free = held.filter(({ topic, partition }) => {
            const key = `${topic}|${partition}`;
            const count = (heldCounts.get(key) ?? 1) - 1;
            if (count > 0) heldCounts.set(key, count);
            else heldCounts.delete(key);
            return count <= 0;
          });
          if (paused || stopped || free.length === 0) return;
          try {
            consumer.resume(
              free.map(({ topic, partition }) => ({ topic, partitions: [partition] })),
            );
          } catch {
            // Not running (crashed): a restart fetches every assigned partition again.
          }
        };
      },
    );
    markJoined();
  });

  const onBatch = async (payload: EachBatchPayload) => {
    const { batch } = payload;
    let rebalancing = false;
    const records: IncomingRecord[] = batch.messages.map((m) => ({
      offset: m.offset,
      key: m.key === null ? null : textOf(m.key),
      value: m.value ?? EMPTY,
      headers: decodeHeaders(m.headers),
    }));
    const heartbeat = async () => {
      try {
        await payload.heartbeat();
        return true;
      } catch {
        // Commit what is done while this generation of the group still owns the partitions.
        rebalancing = true;
        void flush();
        return false;
      }
    };
    // Called as each record finishes; kafkajs sends one only once its interval has passed, so
    // calls close together share one answer instead of each costing a promise chain.
    let lastHeartbeat: Promise<boolean> | undefined;
    let lastHeartbeatAt = 0;
    const control: BatchControl = {
      isActive: () => !stopped && !rebalancing && payload.isRunning() && !payload.isStale(),
      heartbeat: () => {
        const now = Date.now();
        if (lastHeartbeat === undefined || now - lastHeartbeatAt >= HEARTBEAT_COALESCE_MS) {
          lastHeartbeatAt = now;
          lastHeartbeat = heartbeat();
        }
        return lastHeartbeat;
      },
      markFetched: (offset) => payload.resolveOffset(offset),
      pause: () => {
        // Paused as a whole (stopping, or draining for a subscription change): a pause by
        // partition would undo that, and so would its resume.
        if (paused || stopped) return () => {};
        const resume = payload.pause();
        return () => {
          if (paused || stopped) return;
          try {
            resume();
          } catch {
            // The consumer restarted or stopped meanwhile: nothing is paused any more.
          }
        };
      },
    };
    try {
      await config.onBatch({ topic: batch.topic, partition: batch.partition, records }, control);
    } catch (error) {
      // Never into kafkajs: it would retry the batch from its start after logging.
      log('error', 'Batch handling failed unexpectedly', {
        groupId: config.groupId,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  };

  const run = () => {
    joining = true;
    return consumer
      .run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: config.partitionsConcurrently,
        eachBatch: onBatch,
      })
      .catch((error: unknown) => {
        if (!stopped) {
          log('error', 'The consumer could not start', {
            groupId: config.groupId,
            error: error instanceof Error ? error.message : String(error),
          });
        }
      })
      .finally(() => {
        joining = false;
      });
  };

  const leave = async () => {
    // A disconnect while the group join is still pending does not abort the join: the member
    // would join anyway and linger. Let the join finish, then leave.
    await running;
    // kafkajs drops a commit made after the disconnect began, silently: a start position
    // committed at the join (a new subscription's) would be lost to a stop right after it.
    await Promise.allSettled(holds);
    await Promise.allSettled(commits);
    // A commit refused for a moment (the group rebalancing) is tried again before leaving.
    for (let attempt = 1; !(await flush()) && attempt < STOP_COMMIT_ATTEMPTS && live; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, COMMIT_RETRY_MS));
    }
    if (pending.size > 0) {
      log(
        'warn',
        'Could not commit positions before leaving; the next owner receives those records again',
        {
          groupId: config.groupId,
        },
      );
    }
    disconnected = true;
    clearTimeout(flushTimer);
    await consumer.disconnect();
    clearTimeout(flushTimer);
  };

  return {
    async start() {
      await consumer.connect();
      for (const subscription of config.topics) {
        await consumer.subscribe({
          topics: [subscription.topic],
          fromBeginning: subscription.from === 'earliest',
        });
      }
      // run() resolves only once the group is joined, which takes seconds on some clusters;
      // records sent meanwhile wait in the topics, so nothing depends on it having joined.
      running = run();
    },
    joined: () => joined,
    pause() {
      paused = true;
      try {
        consumer.pause(topics.map((topic) => ({ topic })));
      } catch {
        // Not running yet: the join handler pauses it.
      }
    },
    commit(positions) {
      const committing = (async () => {
        // kafkajs ignores commits until its runner is marked running, which happens just after the
        // join event: called from onAssigned, this must wait a turn.
        await new Promise((resolve) => setImmediate(resolve));
        await consumer.commitOffsets(
          positions.map((p) => ({ topic: p.topic, partition: p.partition, offset: p.offset })),
        );
      })();
      commits.add(committing);
      const done = () => void commits.delete(committing);
      committing.then(done, done);
      return committing;
    },
    recordPosition(topic, partition, nextOffset) {
      pending.set(`${topic}|${partition}`, { topic, partition, offset: nextOffset });
      if (config.commitIntervalMs === 0) void flush();
      else flushTimer ??= setTimeout(() => void flush(), config.commitIntervalMs);
    },
    flush,
    async stop(options) {
      stopped = true;
      clearTimeout(restartTimer);
      markJoined();
      if (joining && options?.waitForJoin !== true) {
        // The cluster may hold the join for long (librdkafka's mock cluster: the session timeout
        // of the member that left the group last); nothing here waits for it.
        void leave().catch((error: unknown) => {
          log('debug', 'Leaving the group after its join failed', {
            groupId: config.groupId,
            error: error instanceof Error ? error.message : String(error),
          });
        });
        return;
      }
      await leave();
    },
  };
}
