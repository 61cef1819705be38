import {
  ConfigurationError,
  checkWholeNumber,
  DestinationNotFoundError,
  Headers,
  type Logger,
  silentLogger,
  type Transport,
  type TransportCapabilities,
  TransportUnavailableError,
  UsageError,
} from '@tidings/core';
import {
  checkTimerMs,
  copyEntries,
  type EndpointTopology,
  type IncomingTransportMessage,
  type MessageOutcome,
  QueueSlots,
  type ReceiveSettings,
  redactSecrets,
  TRANSPORT_SPI_VERSION,
  type TransportContext,
  type TransportEndpoint,
  type TransportOperation,
} from '@tidings/core/transport';
import { PartitionState } from './batch-handler.js';
import { isRetryableProduceFailure, mapKafkaError } from './errors.js';
import {
  type ClientConsumer,
  type ClientLogLevel,
  createKafkaClient,
  type IncomingRecord,
  type KafkaClient,
  type OutgoingRecord,
  type RecordBatch,
  type TopicSpec,
} from './kafka-client.js';
import { type KafkaTransportOptions, kafkaTransportDefaults } from './options.js';
import { ProducerBatcher } from './producer-batcher.js';
import { headersFromRecord, recordHeadersFor } from './record-headers.js';
import { toTopicName } from './topic-names.js';

/** The Kafka transport, plus what tests and tools need to name its topics and release it. */
export interface KafkaTransport extends Transport {
  /** The topic a queue (input, instance or error queue) maps to. */
  queueTopic(queue: string): string;
  /** The topic events of a message type are published to. */
  eventTopic(messageType: string): string;
  /** Closes the shared producer and admin connections (endpoints close their own consumers). */
  close(): Promise<void>;
}

type Resolved = Required<Omit<KafkaTransportOptions, 'sasl' | 'mapBrokerAddress'>> &
  Pick<KafkaTransportOptions, 'sasl' | 'mapBrokerAddress'>;

const REDELIVERY_DELAY_MS = 250;
/** Attempts to reach the cluster at start are this far apart at first, then twice as far. */
const CONNECT_RETRY_MIN_MS = 100;
const CONNECT_RETRY_MAX_MS = 1_000;

/**
 * Why a connection failed, as the socket error code only: kafkajs's messages name the broker's
 * address, which is configuration, not for whoever sees the error.
 */
function reasonOf(failure: unknown): string {
  if (failure === undefined) return ': no broker answered in time';
  let text = '';
  // kafkajs wraps the socket's error (originalError), retries wrap that again.
  for (let error: unknown = failure, depth = 0; error instanceof Error && depth < 5; depth++) {
    text += ` ${error.message}`;
    error = (error as { originalError?: unknown }).originalError ?? error.cause;
  }
  const code =
    /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)\b/.exec(
      text,
    )?.[1];
  return code === undefined ? '' : `: ${code}`;
}
/** Longest a receiver waits after its group's join for a partition with records to give one. */
const CAUGHT_UP_LIMIT_MS = 10_000;

function validate(options: KafkaTransportOptions): Resolved {
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
  const resolved = { ...kafkaTransportDefaults, ...stripUndefined(options) } as Resolved;
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

/**
 * Kafka through kafkajs. Each endpoint has an input topic read by a consumer group named after it
 * (its instances compete in the group), an error topic, a topic per event type it handles (read
 * by the same group) and, per instance, a reply topic read by a group of that instance alone.
 */
export function createKafkaTransport(options: KafkaTransportOptions): KafkaTransport {
  const settings = validate(options);
  const secrets = [settings.sasl?.password];
  const capabilities: TransportCapabilities = {
    delayedDelivery: false,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: settings.maxMessageSizeBytes,
    deliveryCount: false,
    durable: true,
    // A queue is a topic, read partition by partition.
    partitionedQueues: true,
  };
  const queueTopic = (queue: string) => toTopicName(settings.topicPrefix, queue);
  const eventTopic = (messageType: string) =>
    toTopicName(`${settings.topicPrefix}${settings.eventTopicPrefix}`, messageType);

  let logger: Logger = silentLogger;
  const log = (level: ClientLogLevel, message: string, fields: Record<string, unknown>) => {
    // kafkajs's info chatter (joins, starts) is debug here.
    const text = redactSecrets(message, secrets);
    const safe: Record<string, unknown> = {};
    for (const name in fields) {
      const value = fields[name];
      safe[name] = typeof value === 'string' ? redactSecrets(value, secrets) : value;
    }
    if (level === 'error') logger.error(text, safe);
    else if (level === 'warn') logger.warn(text, safe);
    else logger.debug(text, safe);
  };

  let client: KafkaClient | undefined;
  let connecting: Promise<KafkaClient> | undefined;
  let batcher: ProducerBatcher | undefined;
  let openEndpoints = 0;
  const ensured = new Set<string>();
  const knownTopics = new Set<string>();
  let refreshingTopics: Promise<void> | undefined;

  const connect = (): Promise<KafkaClient> => {
    if (client !== undefined) return Promise.resolve(client);
    connecting ??= (async () => {
      const fresh = createKafkaClient({
        brokers: settings.brokers,
        clientId: settings.clientId,
        ssl: settings.ssl,
        sasl: settings.sasl,
        mapBrokerAddress: settings.mapBrokerAddress,
        connectionTimeoutMs: settings.connectionTimeoutMs,
        requestTimeoutMs: settings.requestTimeoutMs,
        retries: settings.retries,
        log,
      });
      try {
        await reachCluster(fresh);
        await fresh.connect();
      } catch (error) {
        await fresh.close();
        throw mapKafkaError(error, { operation: 'connect', secrets });
      } finally {
        connecting = undefined;
      }
      client = fresh;
      batcher = new ProducerBatcher(
        (records) => fresh.produce(records),
        // The declared per-message limit bounds whole requests too: the broker applies its limit
        // to each partition's batch in a request, and one batch may hold every record.
        { maxRecords: settings.maxBatchRecords, maxBytes: settings.maxMessageSizeBytes },
        isRetryableProduceFailure,
      );
      return fresh;
    })();
    return connecting;
  };

  /**
   * Tries to reach the cluster until `connectTimeoutMs` has passed, then fails with one error.
   * kafkajs alone would retry as `retries` says (seconds, one log line per broker per attempt),
   * with the producer and the admin client each retrying on their own, one of them still at it
   * after the other had failed.
   */
  const reachCluster = async (kafka: KafkaClient) => {
    const deadline = Date.now() + settings.connectTimeoutMs;
    for (
      let delayMs = CONNECT_RETRY_MIN_MS;
      ;
      delayMs = Math.min(2 * delayMs, CONNECT_RETRY_MAX_MS)
    ) {
      let timer: NodeJS.Timeout | undefined;
      const outOfTime = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now()));
      });
      let failure: unknown;
      try {
        const reached = await Promise.race([
          kafka.reach().then(() => 'reached' as const),
          outOfTime,
        ]);
        if (reached === 'reached') return;
      } catch (error) {
        failure = error;
        const mapped = mapKafkaError(error, { operation: 'connect', secrets });
        // Not a matter of reaching it (credentials refused, say): trying again changes nothing.
        if (!(mapped instanceof TransportUnavailableError)) throw mapped;
      } finally {
        clearTimeout(timer);
      }
      if (failure === undefined || Date.now() + delayMs >= deadline) {
        throw new TransportUnavailableError(
          `Kafka: could not reach the cluster within ${settings.connectTimeoutMs} ms (connectTimeoutMs)${reasonOf(failure)}. Check the brokers option and that the cluster is up and reachable from here.`,
          { cause: failure },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  };

  const release = async () => {
    const closing = client;
    client = undefined;
    batcher = undefined;
    ensured.clear();
    await closing?.close();
  };

  const ensureTopics = async (kafka: KafkaClient, specs: TopicSpec[]) => {
    const unique = new Map(specs.map((s) => [s.topic, s] as const));
    const missing = [...unique.values()].filter((s) => !ensured.has(s.topic));
    if (missing.length === 0) return;
    try {
      await kafka.ensureTopics(missing);
    } catch (error) {
      throw mapKafkaError(error, {
        operation: `create topics ${missing.map((s) => s.topic).join(', ')}`,
        secrets,
      });
    }
    for (const spec of missing) {
      ensured.add(spec.topic);
      knownTopics.add(spec.topic);
    }
  };

  const spec = (topic: string, config?: Record<string, string>): TopicSpec => ({
    topic,
    partitions: settings.partitions,
    replicationFactor: settings.replicationFactor,
    ...(config ? { config } : {}),
  });

  /** A queue's topic must exist: sending to a queue nobody created fails like on other brokers. */
  const assertQueueExists = async (kafka: KafkaClient, queue: string, topic: string) => {
    if (knownTopics.has(topic)) return;
    refreshingTopics ??= kafka
      .listTopics()
      .then((topics) => {
        for (const name of topics) knownTopics.add(name);
      })
      .finally(() => {
        refreshingTopics = undefined;
      });
    try {
      await refreshingTopics;
    } catch (error) {
      throw mapKafkaError(error, { operation: 'list topics', secrets });
    }
    if (!knownTopics.has(topic)) throw new DestinationNotFoundError(queue);
  };

  /** The topic an operation goes to, or a promise of it when the topic must be checked first. */
  const topicFor = (
    kafka: KafkaClient,
    operation: TransportOperation,
  ): string | Promise<string> => {
    const { destination } = operation;
    if (destination.kind === 'queue') {
      const topic = queueTopic(destination.queue);
      if (knownTopics.has(topic)) return topic;
      return assertQueueExists(kafka, destination.queue, topic).then(() => topic);
    }
    const topic = eventTopic(destination.messageType);
    if (ensured.has(topic)) return topic;
    // Publishing with no subscriber yet must still work: the event topic is created on demand.
    return ensureTopics(kafka, [spec(topic)]).then(() => topic);
  };

  const recordFor = (topic: string, operation: TransportOperation): OutgoingRecord => {
    const { message } = operation;
    const orderingKey = message.headers[settings.orderingKeyHeader];
    return {
      topic,
      key: orderingKey ?? message.messageId,
      keyed: orderingKey !== undefined,
      value: message.body,
      headers: copiedHeaders(operation) ?? recordHeadersFor(message.headers),
    };
  };

  /** Synchronous when every topic is already known (the common case), else after the checks. */
  const toRecords = (
    kafka: KafkaClient,
    operations: readonly TransportOperation[],
  ): OutgoingRecord[] | Promise<OutgoingRecord[]> => {
    for (const operation of operations) {
      if (operation.delayMs !== undefined && operation.delayMs > 0) {
        throw new UsageError(
          "The Kafka transport cannot delay delivery (capabilities.delayedDelivery is false); send without 'delayMs'.",
        );
      }
    }
    const topics = operations.map((operation) => topicFor(kafka, operation));
    if (topics.every((topic) => typeof topic === 'string')) {
      return operations.map((operation, i) => recordFor(topics[i] as string, operation));
    }
    return Promise.all(topics).then((known) =>
      operations.map((operation, i) => recordFor(known[i] as string, operation)),
    );
  };

  const transport: KafkaTransport = {
    spiVersion: TRANSPORT_SPI_VERSION,
    name: 'kafka',
    capabilities,
    queueTopic,
    eventTopic,
    close: release,

    async openEndpoint(
      topology: EndpointTopology,
      context: TransportContext,
    ): Promise<TransportEndpoint> {
      if (logger === silentLogger) logger = context.logger;
      const kafka = await connect();
      openEndpoints++;
      try {
        return await openKafkaEndpoint(topology, context, kafka);
      } catch (error) {
        if (--openEndpoints === 0) await release();
        throw error;
      }
    },
  };

  async function openKafkaEndpoint(
    topology: EndpointTopology,
    context: TransportContext,
    kafka: KafkaClient,
  ): Promise<TransportEndpoint> {
    const inputTopic =
      topology.inputQueue !== undefined ? queueTopic(topology.inputQueue) : undefined;
    const instanceTopic =
      topology.instanceQueue !== undefined ? queueTopic(topology.instanceQueue) : undefined;
    const errorTopic = queueTopic(topology.errorQueue);
    const subscriptions = new Set(inputTopic !== undefined ? topology.subscriptions : []);
    const specs = [spec(errorTopic)];
    if (inputTopic !== undefined) specs.push(spec(inputTopic));
    if (instanceTopic !== undefined) {
      specs.push(
        spec(instanceTopic, { 'retention.ms': String(settings.instanceTopicRetentionMs) }),
      );
    }
    for (const type of subscriptions) specs.push(spec(eventTopic(type)));
    await ensureTopics(kafka, specs);

    // Where a new subscription starts: the end of the event topic now, so the endpoint gets every
    // event published from here on, even before its group has joined (which takes seconds).
    const anchors = new Map<string, Map<number, string>>();
    const anchorSubscription = async (type: string) => {
      if (inputTopic === undefined) return;
      const topic = eventTopic(type);
      try {
        const committed = await kafka.committedOffsets(inputTopic, topic);
        const ends = await kafka.endOffsets(topic);
        const anchor = new Map<number, string>();
        for (const [partition, end] of ends) {
          if (committed.get(partition) === undefined) anchor.set(partition, end);
        }
        if (anchor.size === 0) return;
        // Recorded for the group right away where the cluster allows it (no member running yet);
        // otherwise at this consumer's first join (onAssigned below).
        const recorded = await kafka.setGroupOffsets(inputTopic, topic, anchor).then(
          () => true,
          () => false,
        );
        if (!recorded) anchors.set(topic, anchor);
      } catch (error) {
        throw mapKafkaError(error, { operation: `read positions of ${topic}`, secrets });
      }
    };
    await Promise.all([...subscriptions].map(anchorSubscription));

    const queueOfTopic = new Map<string, string>();
    if (inputTopic !== undefined && topology.inputQueue !== undefined) {
      queueOfTopic.set(inputTopic, topology.inputQueue);
    }
    if (instanceTopic !== undefined && topology.instanceQueue !== undefined) {
      queueOfTopic.set(instanceTopic, topology.instanceQueue);
    }

    let receive: ReceiveSettings | undefined;
    // The input queue's (with its event topics) and the instance queue's handling slots, apart:
    // replies find slots while every input slot is held by a handler awaiting one. The input's
    // outlive a subscription change's restart, so old and new consumer share one bound.
    let inputSlots: QueueSlots | undefined;
    let instanceSlots: QueueSlots | undefined;
    let stopping = false;
    let closed = false;
    let mainReceiver: Receiver | undefined;
    let instanceReceiver: Receiver | undefined;

    const deliver = (record: IncomingRecord, batch: RecordBatch): Promise<MessageOutcome> => {
      const { headers, unreadableReason } = headersFromRecord(record.headers);
      const message: IncomingTransportMessage = {
        messageId:
          headers[Headers.MessageId] ?? `${batch.topic}/${batch.partition}/${record.offset}`,
        headers,
        body: record.value,
        // Events arrive on the endpoint's behalf: they count as received from its input queue.
        queue: queueOfTopic.get(batch.topic) ?? topology.inputQueue ?? batch.topic,
        ...(unreadableReason !== undefined ? { unreadableReason } : {}),
      };
      received.set(message, record);
      const failed = (error: unknown): MessageOutcome => {
        context.logger.error('onMessage rejected; the record will be handled again', {
          messageId: message.messageId,
          error: error instanceof Error ? error.message : String(error),
        });
        return 'abandon';
      };
      // Not async, and no await: this runs for every record.
      try {
        return (receive as ReceiveSettings).onMessage(message).catch(failed);
      } catch (error) {
        return Promise.resolve(failed(error));
      }
    };

    interface Receiver {
      readonly consumer: ClientConsumer;
      /** Records taken in and not done, across the consumer's partitions. */
      inFlight(): number;
      /**
       * Once the consumer stopped: its partitions start nothing more, and those with records still
       * running are returned, for the consumer that replaces it to wait for.
       */
      revokeAll(): Map<string, PartitionState>;
      /**
       * Resolves once the group has joined and every partition of this member that held records
       * to read then has handed its first one over: from here on its records arrive as fast as
       * they are fetched. A partition that gives nothing for `CAUGHT_UP_LIMIT_MS` after the join
       * (only transaction markers in it, say) is not waited for.
       */
      caughtUp(): Promise<void>;
    }

    /**
     * Two live processes with one instance id share its reply group: the longest there keeps every
     * partition (its replies), the other gets none until it leaves. Both are told, loudly.
     */
    const instanceShared = (owner: boolean) => {
      const { endpointName, instanceQueue } = topology;
      const instanceId =
        instanceQueue?.startsWith(`${endpointName}.`) === true
          ? instanceQueue.slice(endpointName.length + 1)
          : instanceQueue;
      const advice =
        'Give every replica its own instanceId, e.g. from the HOSTNAME or pod name, and keep it across restarts of that replica.';
      context.logger.error(
        owner
          ? `Another process of endpoint '${endpointName}' runs with instance id '${instanceId}': this one keeps receiving the replies to that id, the other receives none and its requests time out. ${advice}`
          : `Another process of endpoint '${endpointName}' already runs with instance id '${instanceId}': it receives the replies to that id, so requests made here time out (until it stops). ${advice}`,
        { instanceId, instanceQueue },
      );
    };

    const receiverFor = (
      groupId: string,
      topics: Array<{ topic: string; from: 'earliest' | 'latest' }>,
      slots: QueueSlots,
      /** The replaced consumer's partitions with records still running (`revokeAll`). */
      inherited?: ReadonlyMap<string, PartitionState>,
    ): Receiver => {
      const partitions = new Map<string, PartitionState>();
      /**
       * Partitions no longer this consumer's whose records still run. One assigned here again
       * starts a key's records only once that key's records there have settled: its fetch replays
       * from the committed position, which may be a record still running.
       */
      const draining = new Map(inherited);
      let assigned: Readonly<Record<string, readonly number[]>> = {};
      /** Group joins so far: a position read for one join is not applied after the next. */
      let joins = 0;
      /** Woken after each batch is taken in: `caughtUp` looks again. */
      const batchTaken: Array<() => void> = [];
      const deps = {
        slots,
        deliver,
        isStopping: () => stopping,
        recordPosition: (topic: string, partition: number, nextOffset: string) =>
          consumer.recordPosition(topic, partition, nextOffset),
        redeliveryDelayMs: REDELIVERY_DELAY_MS,
        maxBufferedPerPartition: Math.max(256, 2 * (receive?.concurrency ?? 1)),
      };
      const consumer: ClientConsumer = kafka.consumer({
        groupId,
        topics,
        partitionsConcurrently: Math.max(1, Math.min(receive?.concurrency ?? 1, 64)),
        maxWaitTimeInMs: settings.maxWaitTimeInMs,
        maxBytesPerPartition: settings.maxBytesPerPartition,
        rebalanceTimeoutMs: settings.rebalanceTimeoutMs,
        commitIntervalMs: settings.commitIntervalMs,
        ...(groupId === instanceTopic
          ? {
              exclusive: true,
              onShared: instanceShared,
              // Its own, shorter session: no other member waits to take the replies over, and a
              // restart after a crash waits this long for the crashed member to expire.
              sessionTimeoutMs: settings.instanceSessionTimeoutMs,
              heartbeatIntervalMs: Math.max(
                1,
                Math.min(
                  settings.heartbeatIntervalMs,
                  Math.floor(settings.instanceSessionTimeoutMs / 3),
                ),
              ),
            }
          : {
              sessionTimeoutMs: settings.sessionTimeoutMs,
              heartbeatIntervalMs: settings.heartbeatIntervalMs,
            }),
        onBatch: async (batch, control) => {
          const key = `${batch.topic}|${batch.partition}`;
          let state = partitions.get(key);
          if (state === undefined) {
            const predecessor = draining.get(key);
            draining.delete(key);
            state = new PartitionState(
              batch.topic,
              batch.partition,
              deps,
              predecessor !== undefined && predecessor.inFlight > 0 ? predecessor : undefined,
            );
            partitions.set(key, state);
          }
          await state.take(batch, control);
          for (const wake of batchTaken.splice(0)) wake();
        },
        onAssigned: (assignment, seek, hold) => {
          joins++;
          assigned = assignment;
          // Partitions that went to another member: records still running there record nothing;
          // the new owner starts from the committed position. They drain here, in case the
          // partition comes back while they run.
          for (const [key, state] of draining) {
            if (state.inFlight === 0) draining.delete(key);
          }
          for (const [key, state] of partitions) {
            if (!assignment[state.topic]?.includes(state.partition)) {
              state.revoke();
              partitions.delete(key);
              if (state.inFlight > 0) draining.set(key, state);
            }
          }
          const anchored: Array<{ topic: string; partition: number; offset: string }> = [];
          for (const [topic, assigned] of Object.entries(assignment)) {
            const anchor = anchors.get(topic);
            if (anchor === undefined) continue;
            for (const partition of assigned) {
              const offset = anchor.get(partition);
              if (offset !== undefined) anchored.push({ topic, partition, offset });
            }
          }
          if (anchored.length > 0) startAtAnchors(anchored, seek, hold(anchored));
        },
      });

      /**
       * An anchor was read when the subscription was made. Another member may have joined first
       * and committed since (and handled events past it, or not yet up to it): the group's
       * position wins. So the partitions are held while the group's positions are read. An
       * anchor goes once the group has a position there; until then the next join (this
       * consumer's, or the next one's after a subscription change) applies it again.
       */
      const startAtAnchors = (
        anchored: ReadonlyArray<{ topic: string; partition: number; offset: string }>,
        seek: (topic: string, partition: number, offset: string) => void,
        resume: () => void,
      ) => {
        const join = joins;
        const settled = (topic: string, partition: number) => anchors.get(topic)?.delete(partition);
        const groupPositions = async () => {
          const committed = new Map<string, Map<number, string | undefined>>();
          for (const topic of new Set(anchored.map((a) => a.topic))) {
            committed.set(topic, await kafka.committedOffsets(groupId, topic));
          }
          return committed;
        };
        void groupPositions()
          // Positions unknown (the cluster did not answer): the anchors, as read.
          .catch(() => new Map<string, Map<number, string | undefined>>())
          .then((committed) => {
            // Rejoined meanwhile: these partitions may be another member's now.
            if (join !== joins) return resume();
            const positions: Array<{ topic: string; partition: number; offset: string }> = [];
            try {
              for (const { topic, partition, offset } of anchored) {
                const groupOffset = committed.get(topic)?.get(partition);
                seek(topic, partition, groupOffset ?? offset);
                if (groupOffset === undefined) positions.push({ topic, partition, offset });
                else settled(topic, partition);
              }
            } catch {
              // The consumer stopped meanwhile: nothing to read from.
              return resume();
            }
            if (positions.length === 0) return resume();
            // Durable, so events published while this process is down are not skipped when it
            // comes back before handling any. Made before the partitions are let go: a stop
            // waits for both.
            const committing = consumer.commit(positions);
            resume();
            committing.then(
              () => {
                for (const { topic, partition } of positions) settled(topic, partition);
              },
              (error: unknown) => {
                context.logger.warn('Could not record where a new subscription starts', {
                  error: error instanceof Error ? error.message : String(error),
                });
              },
            );
          });
      };
      /** Where this member starts reading each assigned partition that holds records beyond it. */
      const toRead = async () => {
        const waiting: Array<{ topic: string; partition: number; from: bigint }> = [];
        for (const { topic, from } of topics) {
          const mine = assigned[topic] ?? [];
          if (mine.length === 0) continue;
          const [starts, ends, committed] = await Promise.all([
            kafka.startOffsets(topic),
            kafka.endOffsets(topic),
            kafka.committedOffsets(groupId, topic),
          ]);
          for (const partition of mine) {
            const end = BigInt(ends.get(partition) ?? '0');
            const fallback = from === 'earliest' ? starts.get(partition) : ends.get(partition);
            const start = BigInt(committed.get(partition) ?? fallback ?? '0');
            if (end > start) waiting.push({ topic, partition, from: start });
          }
        }
        return waiting;
      };
      const caughtUp = async () => {
        await consumer.joined();
        const deadline = Date.now() + CAUGHT_UP_LIMIT_MS;
        // Positions unknown (the cluster did not answer): joined is as far as this can tell.
        let waiting = await toRead().catch(() => []);
        while (waiting.length > 0 && !stopping && Date.now() < deadline) {
          waiting = waiting.filter(
            ({ topic, partition, from }) =>
              assigned[topic]?.includes(partition) &&
              (partitions.get(`${topic}|${partition}`)?.lastTaken ?? -1n) < from,
          );
          if (waiting.length === 0) return;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 100);
            batchTaken.push(() => {
              clearTimeout(timer);
              resolve();
            });
          });
        }
      };
      return {
        consumer,
        inFlight: () =>
          [...partitions.values(), ...draining.values()].reduce((sum, p) => sum + p.inFlight, 0),
        revokeAll: () => {
          for (const [key, state] of partitions) {
            state.revoke();
            if (state.inFlight > 0) draining.set(key, state);
          }
          partitions.clear();
          for (const [key, state] of draining) {
            if (state.inFlight === 0) draining.delete(key);
          }
          return draining;
        },
        caughtUp,
      };
    };

    /** Stops a receiver once the records it took in are done (or after `drainTimeoutMs`). */
    const stopReceiver = async (
      receiver: Receiver | undefined,
      options?: { readonly waitForJoin?: boolean },
    ) => {
      if (receiver === undefined) return;
      receiver.consumer.pause();
      const deadline = Date.now() + settings.drainTimeoutMs;
      while (receiver.inFlight() > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await receiver.consumer.stop(options);
    };

    const startMain = async (inherited?: ReadonlyMap<string, PartitionState>) => {
      if (inputTopic === undefined) return;
      mainReceiver = receiverFor(
        inputTopic,
        [
          { topic: inputTopic, from: 'earliest' },
          ...[...subscriptions].map((type) => ({
            topic: eventTopic(type),
            from: 'latest' as const,
          })),
        ],
        inputSlots as QueueSlots,
        inherited,
      );
      await mainReceiver.consumer.start();
    };

    const restartMain = async () => {
      if (receive === undefined || stopping || closed) return;
      const previous = mainReceiver;
      mainReceiver = undefined;
      // Left before the next consumer joins: the two would share a generation otherwise.
      await stopReceiver(previous, { waitForJoin: true });
      // Records the stop did not wait for (past its bound) run on; those not started yet stay
      // for the new consumer, which waits for the running ones' keys.
      const running = previous?.revokeAll();
      // close() or stopReceiving() may have come while the previous receiver stopped.
      if (stopping || closed) return;
      await startMain(running);
    };

    // Subscription changes one at a time, in the order they were asked for: two restarts at once
    // would each start a consumer, and the one overwritten would run on unstopped. close() waits
    // for the change under way.
    let changing: Promise<void> = Promise.resolve();
    const changeSubscriptions = (change: () => Promise<void>): Promise<void> => {
      const run = changing.then(change);
      changing = run.catch(() => {});
      return run;
    };

    return {
      // Not async: this runs for every send, and an async frame would hold the operations (their
      // headers and bodies) until the produce is acknowledged; only the destination is kept.
      dispatch(operations) {
        try {
          if (operations.length === 0) return Promise.resolve();
          const producing = batcher;
          if (producing === undefined) {
            throw mapKafkaError(new Error('The transport was closed.'), { operation: 'dispatch' });
          }
          const [first] = operations;
          const destination =
            operations.length === 1 && first?.destination.kind === 'queue'
              ? first.destination.queue
              : undefined;
          const produce = (records: OutgoingRecord[]) =>
            producing.send(records).catch((error: unknown) => {
              throw mapKafkaError(error, {
                operation: `produce ${records.length} record(s)`,
                ...(destination !== undefined ? { destination } : {}),
                secrets,
              });
            });
          const pending = toRecords(kafka, operations);
          return Array.isArray(pending) ? produce(pending) : pending.then(produce);
        } catch (error) {
          return Promise.reject(error);
        }
      },

      async startReceiving(receiveSettings) {
        if (receive !== undefined) return;
        if (closed) throw new UsageError('This Kafka endpoint connection is closed.');
        receive = receiveSettings;
        inputSlots = new QueueSlots(receiveSettings.concurrency);
        instanceSlots = new QueueSlots(receiveSettings.concurrency);
        stopping = false;
        try {
          await startMain();
          if (instanceTopic !== undefined) {
            instanceReceiver = receiverFor(
              instanceTopic,
              [{ topic: instanceTopic, from: 'earliest' }],
              instanceSlots,
            );
            await instanceReceiver.consumer.start();
          }
        } catch (error) {
          throw mapKafkaError(error, { operation: 'start consumers', secrets });
        }
      },

      async whenReceiving() {
        await Promise.all([mainReceiver?.caughtUp(), instanceReceiver?.caughtUp()]);
      },

      async stopReceiving() {
        // Handlers in flight finish and their records are committed at close; nothing new starts.
        stopping = true;
        mainReceiver?.consumer.pause();
        instanceReceiver?.consumer.pause();
      },

      async subscribe(messageType) {
        if (inputTopic === undefined) return;
        await changeSubscriptions(async () => {
          if (subscriptions.has(messageType)) return;
          await ensureTopics(kafka, [spec(eventTopic(messageType))]);
          await anchorSubscription(messageType);
          // In the set only once subscribed, so that a failed subscribe can be made again.
          subscriptions.add(messageType);
          try {
            // kafkajs cannot change a running consumer's topics: rejoin with the new set.
            await restartMain();
          } catch (error) {
            subscriptions.delete(messageType);
            throw error;
          }
        });
      },

      async unsubscribe(messageType) {
        await changeSubscriptions(async () => {
          if (!subscriptions.delete(messageType)) return;
          try {
            await restartMain();
          } catch (error) {
            subscriptions.add(messageType);
            throw error;
          }
        });
      },

      async close() {
        if (closed) return;
        closed = true;
        stopping = true;
        // A restart under way starts nothing now; what it left running is stopped below.
        await changing;
        await Promise.allSettled([stopReceiver(mainReceiver), stopReceiver(instanceReceiver)]);
        if (--openEndpoints === 0) await release();
      },
    };
  }

  return transport;
}

/** The record behind each message this transport handed over, for copies of it. */
const received = new WeakMap<IncomingTransportMessage, IncomingRecord>();

/**
 * A copy's record headers (`TransportOperation.copyOf`): the received record's as they came, with
 * the headers the copy adds as record headers of their own. Undefined to send it afresh.
 */
function copiedHeaders(operation: TransportOperation): Record<string, string> | undefined {
  const { copyOf } = operation;
  const record = copyOf === undefined ? undefined : received.get(copyOf);
  if (copyOf === undefined || record === undefined) return undefined;
  return copyEntries(record.headers, copyOf.headers, operation.message.headers);
}
