import type { MessageOutcome, QueueSlots } from '@tidings/core/transport';
import type {
  ClientConsumer,
  IncomingRecord,
  KafkaClient,
  RecordBatch,
  TopicSubscription,
} from './kafka-client.js';
import type { ResolvedKafkaOptions } from './options.js';
import { type PartitionHost, PartitionState } from './partition-state.js';
import type { SubscriptionAnchors } from './subscription-anchors.js';

const REDELIVERY_DELAY_MS = 250;
/** Longest a reader waits after its group's join for a partition with records to give one. */
const CAUGHT_UP_LIMIT_MS = 10_000;

/** How a reader's group is joined: shared by the endpoint's instances, or one instance's alone. */
export type GroupMembership =
  | { readonly exclusive: false }
  | {
      readonly exclusive: true;
      /** Another process shares the group; `owner`: this one keeps the partitions. */
      readonly onShared: (owner: boolean) => void;
    };

/** What a reader takes from its `Receiver`. */
export interface ReaderHost {
  readonly kafka: KafkaClient;
  readonly settings: ResolvedKafkaOptions;
  /** Handlers run at once at most (the endpoint's `concurrency`). */
  readonly concurrency: number;
  /** Hands one record to core. Never rejects. */
  deliver(record: IncomingRecord, batch: RecordBatch): Promise<MessageOutcome>;
  /** True once the endpoint stops receiving. */
  isStopping(): boolean;
}

/**
 * One consumer group member of an endpoint (its input queue with its events, or its instance
 * queue): the consumer, and the state of each partition it reads.
 */
export class GroupReader {
  readonly consumer: ClientConsumer;
  private readonly partitions = new Map<string, PartitionState>();
  /**
   * Partitions no longer this consumer's whose records still run. One assigned here again starts a
   * key's records only once that key's records there have settled: its fetch replays from the
   * committed position, which may be a record still running.
   */
  private readonly draining: Map<string, PartitionState>;
  private assigned: Readonly<Record<string, readonly number[]>> = {};
  /** Group joins so far: a position read for one join is not applied after the next. */
  private joins = 0;
  /** Woken after each batch is taken in: `caughtUp` looks again. */
  private readonly batchTaken: Array<() => void> = [];
  private readonly host: PartitionHost;

  constructor(
    private readonly reader: ReaderHost,
    private readonly groupId: string,
    private readonly topics: readonly TopicSubscription[],
    slots: QueueSlots,
    membership: GroupMembership,
    private readonly anchors: SubscriptionAnchors | undefined,
    /** The replaced consumer's partitions with records still running (`revokeAll`). */
    inherited?: ReadonlyMap<string, PartitionState>,
  ) {
    const { settings, concurrency } = reader;
    this.draining = new Map(inherited);
    this.host = {
      slots,
      deliver: reader.deliver,
      isStopping: reader.isStopping,
      recordPosition: (topic, partition, nextOffset) =>
        this.consumer.recordPosition(topic, partition, nextOffset),
      redeliveryDelayMs: REDELIVERY_DELAY_MS,
      maxBufferedPerPartition: Math.max(256, 2 * concurrency),
    };
    this.consumer = reader.kafka.consumer({
      groupId,
      topics,
      partitionsConcurrently: Math.max(1, Math.min(concurrency, 64)),
      maxWaitTimeInMs: settings.maxWaitTimeInMs,
      maxBytesPerPartition: settings.maxBytesPerPartition,
      rebalanceTimeoutMs: settings.rebalanceTimeoutMs,
      commitIntervalMs: settings.commitIntervalMs,
      ...(membership.exclusive
        ? {
            exclusive: true,
            onShared: membership.onShared,
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
        let state = this.partitions.get(key);
        if (state === undefined) {
          const predecessor = this.draining.get(key);
          this.draining.delete(key);
          state = new PartitionState(
            batch.topic,
            batch.partition,
            this.host,
            predecessor !== undefined && predecessor.inFlight > 0 ? predecessor : undefined,
          );
          this.partitions.set(key, state);
        }
        await state.take(batch, control);
        for (const wake of this.batchTaken.splice(0)) wake();
      },
      onAssigned: (assignment, seek, hold) => {
        this.joins++;
        this.assigned = assignment;
        this.dropRevoked(assignment);
        if (this.anchors === undefined) return;
        const anchored = this.anchors.within(assignment);
        if (anchored.length === 0) return;
        const join = this.joins;
        this.anchors.startAt(
          anchored,
          this.consumer,
          seek,
          hold(anchored),
          () => join === this.joins,
        );
      },
    });
  }

  /** Records taken in and not done, across the consumer's partitions. */
  inFlight(): number {
    let sum = 0;
    for (const state of this.partitions.values()) sum += state.inFlight;
    for (const state of this.draining.values()) sum += state.inFlight;
    return sum;
  }

  /**
   * Once the consumer stopped: its partitions start nothing more, and those with records still
   * running are returned, for the consumer that replaces it to wait for.
   */
  revokeAll(): Map<string, PartitionState> {
    for (const [key, state] of this.partitions) {
      state.revoke();
      if (state.inFlight > 0) this.draining.set(key, state);
    }
    this.partitions.clear();
    for (const [key, state] of this.draining) {
      if (state.inFlight === 0) this.draining.delete(key);
    }
    return this.draining;
  }

  /**
   * Resolves once the group has joined and every partition of this member that held records to
   * read then has handed its first one over: from here on its records arrive as fast as they are
   * fetched. A partition that gives nothing for `CAUGHT_UP_LIMIT_MS` after the join (only
   * transaction markers in it, say) is not waited for.
   */
  async caughtUp(): Promise<void> {
    await this.consumer.joined();
    const deadline = Date.now() + CAUGHT_UP_LIMIT_MS;
    // Positions unknown (the cluster did not answer): joined is as far as this can tell.
    let waiting = await this.toRead().catch(() => []);
    while (waiting.length > 0 && !this.reader.isStopping() && Date.now() < deadline) {
      waiting = waiting.filter(
        ({ topic, partition, from }) =>
          this.assigned[topic]?.includes(partition) &&
          (this.partitions.get(`${topic}|${partition}`)?.lastTaken ?? -1n) < from,
      );
      if (waiting.length === 0) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.batchTaken.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Partitions that went to another member: records still running there record nothing; the new
   * owner starts from the committed position. They drain here, in case the partition comes back
   * while they run.
   */
  private dropRevoked(assignment: Readonly<Record<string, readonly number[]>>): void {
    for (const [key, state] of this.draining) {
      if (state.inFlight === 0) this.draining.delete(key);
    }
    for (const [key, state] of this.partitions) {
      if (!assignment[state.topic]?.includes(state.partition)) {
        state.revoke();
        this.partitions.delete(key);
        if (state.inFlight > 0) this.draining.set(key, state);
      }
    }
  }

  /** Where this member starts reading each assigned partition that holds records beyond it. */
  private async toRead(): Promise<Array<{ topic: string; partition: number; from: bigint }>> {
    const { kafka } = this.reader;
    const waiting: Array<{ topic: string; partition: number; from: bigint }> = [];
    for (const { topic, from } of this.topics) {
      const mine = this.assigned[topic] ?? [];
      if (mine.length === 0) continue;
      const [starts, ends, committed] = await Promise.all([
        kafka.startOffsets(topic),
        kafka.endOffsets(topic),
        kafka.committedOffsets(this.groupId, topic),
      ]);
      for (const partition of mine) {
        const end = BigInt(ends.get(partition) ?? '0');
        const fallback = from === 'earliest' ? starts.get(partition) : ends.get(partition);
        const start = BigInt(committed.get(partition) ?? fallback ?? '0');
        if (end > start) waiting.push({ topic, partition, from: start });
      }
    }
    return waiting;
  }
}
