import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import type { Consumer, EachBatchPayload, IHeaders, Kafka } from 'kafkajs';
import type {
  BatchControl,
  ClientConsumer,
  ClientLog,
  ConsumerConfig,
  IncomingRecord,
} from './kafka-client.js';
import { longestMember, subscriberRoundRobin } from './partitioners.js';

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

/** A consumer kafkajs left stopped is started again after this, then twice as long each time. */
const FIRST_RESTART_DELAY_MS = 1_000;
const MAX_RESTART_DELAY_MS = 30_000;

/** A failed commit is tried again after this (or `commitIntervalMs`, if longer). */
const COMMIT_RETRY_MS = 500;
/** Commits tried at stop before the consumer leaves its group without them. */
const STOP_COMMIT_ATTEMPTS = 5;

/** Heartbeat calls within this many ms of the last one share its answer. */
const HEARTBEAT_COALESCE_MS = 100;

interface Position {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * One kafkajs consumer in a group: joins it, hands batches over, keeps recorded positions until a
 * commit of them succeeds, and starts itself again after failures kafkajs gives up on.
 */
export class GroupConsumer implements ClientConsumer {
  private stopped = false;
  /** Set by the assigner (this member leads the group) when another member shares the group. */
  private sharedAsOwner: boolean | undefined;
  private readonly consumer: Consumer;
  private paused = false;
  private running: Promise<void> | undefined;
  /** `run` has not resolved: the group join is under way. */
  private joining = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelayMs = FIRST_RESTART_DELAY_MS;
  private readonly topics: string[];
  /** Positions recorded but not committed yet, by topic and partition; committed together. */
  private readonly pending = new Map<string, Position>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<boolean> = Promise.resolve(true);
  /** Joined, and not crashed since: kafkajs takes commits. */
  private live = false;
  /** Disconnected at stop: nothing can be committed any more. */
  private disconnected = false;
  /** Commits made through `commit`, not yet settled. */
  private readonly commits = new Set<Promise<void>>();
  /** Partitions held by `onAssigned`, not released yet: what releases them may still commit. */
  private readonly holds = new Set<Promise<void>>();
  /** How many holds not released yet each partition (`topic|partition`) is under. */
  private readonly heldCounts = new Map<string, number>();
  private markJoined: () => void = () => {};
  private readonly firstJoin = new Promise<void>((resolve) => {
    this.markJoined = resolve;
  });

  constructor(
    kafka: Kafka,
    private readonly config: ConsumerConfig,
    private readonly log: ClientLog,
    retries: number,
  ) {
    this.topics = config.topics.map((t) => t.topic);
    this.consumer = kafka.consumer({
      groupId: config.groupId,
      partitionAssigners: [
        config.exclusive
          ? longestMember({ since: Date.now(), token: randomUUID() }, (owner) => {
              this.sharedAsOwner = owner;
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
          if (this.stopped) return false;
          log('warn', 'The consumer failed; restarting it', {
            groupId: config.groupId,
            error: error.message,
          });
          return true;
        },
      },
    });
    const { events } = this.consumer;
    this.consumer.on(events.CRASH, ({ payload }) => this.onCrash(payload));
    // Partitions are about to be given back: commit what is done while this generation owns them.
    this.consumer.on(events.REBALANCING, () => void this.flush());
    this.consumer.on(events.GROUP_JOIN, ({ payload }) => this.onJoin(payload.memberAssignment));
  }

  async start(): Promise<void> {
    await this.consumer.connect();
    for (const subscription of this.config.topics) {
      await this.consumer.subscribe({
        topics: [subscription.topic],
        fromBeginning: subscription.from === 'earliest',
      });
    }
    // run() resolves only once the group is joined, which takes seconds on some clusters;
    // records sent meanwhile wait in the topics, so nothing depends on it having joined.
    this.running = this.run();
  }

  joined(): Promise<void> {
    return this.firstJoin;
  }

  pause(): void {
    this.paused = true;
    try {
      this.consumer.pause(this.topics.map((topic) => ({ topic })));
    } catch {
      // Not running yet: the join handler pauses it.
    }
  }

  commit(positions: readonly Position[]): Promise<void> {
    const committing = (async () => {
      // kafkajs ignores commits until its runner is marked running, which happens just after the
      // join event: called from onAssigned, this must wait a turn.
      await new Promise((resolve) => setImmediate(resolve));
      await this.consumer.commitOffsets(
        positions.map((p) => ({ topic: p.topic, partition: p.partition, offset: p.offset })),
      );
    })();
    this.commits.add(committing);
    const done = () => void this.commits.delete(committing);
    committing.then(done, done);
    return committing;
  }

  recordPosition(topic: string, partition: number, nextOffset: string): void {
    this.pending.set(`${topic}|${partition}`, { topic, partition, offset: nextOffset });
    if (this.config.commitIntervalMs === 0) void this.flush();
    else this.flushTimer ??= setTimeout(() => void this.flush(), this.config.commitIntervalMs);
  }

  /**
   * Commits what is pending, one commit at a time so positions never go backwards. A position
   * stays pending until a commit of it succeeds (a failed one is tried again after
   * `COMMIT_RETRY_MS`); one recorded meanwhile replaces it, so an older position never overwrites
   * a newer one.
   */
  flush(): Promise<boolean> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.flushing = this.flushing.then(() => this.commitPending());
    return this.flushing;
  }

  async stop(options?: { readonly waitForJoin?: boolean }): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.markJoined();
    if (this.joining && options?.waitForJoin !== true) {
      // The cluster may hold the join for long (librdkafka's mock cluster: the session timeout
      // of the member that left the group last); nothing here waits for it.
      void this.leave().catch((error: unknown) => {
        this.log('debug', 'Leaving the group after its join failed', {
          groupId: this.config.groupId,
          error: messageOf(error),
        });
      });
      return;
    }
    await this.leave();
  }

  private async commitPending(): Promise<boolean> {
    const { pending } = this;
    if (pending.size === 0) return true;
    if (this.disconnected) return false;
    // Crashed and not joined again: kafkajs would drop the commit without a word.
    if (!this.live) return false;
    const positions = [...pending.values()];
    try {
      await this.consumer.commitOffsets(positions);
    } catch (error) {
      this.log('warn', 'Could not commit positions; trying again', {
        groupId: this.config.groupId,
        error: messageOf(error),
      });
      if (!this.disconnected) {
        this.flushTimer ??= setTimeout(
          () => void this.flush(),
          Math.max(this.config.commitIntervalMs, COMMIT_RETRY_MS),
        );
      }
      return false;
    }
    for (const position of positions) {
      const key = `${position.topic}|${position.partition}`;
      if (pending.get(key) === position) pending.delete(key);
    }
    return true;
  }

  /**
   * kafkajs restarts a consumer after errors it retries, and leaves it stopped after the others
   * (an authorization refused, say): the endpoint would receive nothing until restarted. Such an
   * error may be fixed outside (an ACL granted), so the consumer is started again, less often each
   * time until it joins.
   */
  private onCrash(payload: { readonly error: Error; readonly restart: boolean }): void {
    this.live = false;
    if (payload.restart || this.stopped) return;
    this.log(
      'error',
      'The consumer stopped on an error the client does not retry; starting it again',
      { groupId: this.config.groupId, error: payload.error.message, inMs: this.restartDelayMs },
    );
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.stopped) this.running = this.run();
    }, this.restartDelayMs);
    this.restartDelayMs = Math.min(2 * this.restartDelayMs, MAX_RESTART_DELAY_MS);
  }

  private onJoin(assigned: Readonly<Record<string, readonly number[]>>): void {
    this.restartDelayMs = FIRST_RESTART_DELAY_MS;
    if (this.paused) this.consumer.pause(this.topics.map((topic) => ({ topic })));
    // Positions of partitions another member owns now are its to commit; those still ours are
    // committed by this generation (a commit of the last one failed, or the consumer restarted).
    for (const [key, position] of this.pending) {
      if (!assigned[position.topic]?.includes(position.partition)) this.pending.delete(key);
    }
    this.live = true;
    if (this.pending.size > 0) setImmediate(() => void this.flush());
    // A join that completed after stop (it was under way then): the member leaves right away.
    if (this.stopped) return;
    if (this.config.exclusive) {
      const owner = Object.values(assigned).some((partitions) => partitions.length > 0);
      if (!owner || this.sharedAsOwner !== undefined) this.config.onShared?.(owner);
      this.sharedAsOwner = undefined;
    }
    this.config.onAssigned?.(
      assigned,
      (topic, partition, offset) => this.consumer.seek({ topic, partition, offset }),
      (held) => this.hold(held),
    );
    this.markJoined();
  }

  /** Keeps partitions from being fetched until the function it returns is called. */
  private hold(held: ReadonlyArray<{ topic: string; partition: number }>): () => void {
    const byTopic = new Map<string, number[]>();
    for (const { topic, partition } of held) {
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), partition]);
    }
    // Paused as a whole (stopping): a pause by partition would undo that (kafkajs).
    if (!this.paused && !this.stopped) {
      this.consumer.pause([...byTopic].map(([topic, partitions]) => ({ topic, partitions })));
    }
    const { heldCounts } = this;
    for (const { topic, partition } of held) {
      const key = `${topic}|${partition}`;
      heldCounts.set(key, (heldCounts.get(key) ?? 0) + 1);
    }
    let released: () => void = () => {};
    const holding = new Promise<void>((resolve) => {
      released = resolve;
    });
    this.holds.add(holding);
    return () => {
      this.holds.delete(holding);
      released();
      // Held again by a later join: that one lets it go.
      const free = held.filter(({ topic, partition }) => {
        const key = `${topic}|${partition}`;
        const count = (heldCounts.get(key) ?? 1) - 1;
        if (count > 0) heldCounts.set(key, count);
        else heldCounts.delete(key);
        return count <= 0;
      });
      if (this.paused || this.stopped || free.length === 0) return;
      try {
        this.consumer.resume(
          free.map(({ topic, partition }) => ({ topic, partitions: [partition] })),
        );
      } catch {
        // Not running (crashed): a restart fetches every assigned partition again.
      }
    };
  }

  private readonly onBatch = async (payload: EachBatchPayload): Promise<void> => {
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
        void this.flush();
        return false;
      }
    };
    // Called as each record finishes; kafkajs sends one only once its interval has passed, so
    // calls close together share one answer instead of each costing a promise chain.
    let lastHeartbeat: Promise<boolean> | undefined;
    let lastHeartbeatAt = 0;
    const control: BatchControl = {
      isActive: () => !this.stopped && !rebalancing && payload.isRunning() && !payload.isStale(),
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
        if (this.paused || this.stopped) return () => {};
        const resume = payload.pause();
        return () => {
          if (this.paused || this.stopped) return;
          try {
            resume();
          } catch {
            // The consumer restarted or stopped meanwhile: nothing is paused any more.
          }
        };
      },
    };
    try {
      await this.config.onBatch(
        { topic: batch.topic, partition: batch.partition, records },
        control,
      );
    } catch (error) {
      // Never into kafkajs: it would retry the batch from its start after logging.
      this.log('error', 'Batch handling failed unexpectedly', {
        groupId: this.config.groupId,
        error: messageOf(error),
      });
    }
  };

  private run(): Promise<void> {
    this.joining = true;
    return this.consumer
      .run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: this.config.partitionsConcurrently,
        eachBatch: this.onBatch,
      })
      .catch((error: unknown) => {
        if (!this.stopped) {
          this.log('error', 'The consumer could not start', {
            groupId: this.config.groupId,
            error: messageOf(error),
          });
        }
      })
      .finally(() => {
        this.joining = false;
      });
  }

  private async leave(): Promise<void> {
    // A disconnect while the group join is still pending does not abort the join: the member
    // would join anyway and linger. Let the join finish, then leave.
    await this.running;
    // kafkajs drops a commit made after the disconnect began, silently: a start position
    // committed at the join (a new subscription's) would be lost to a stop right after it.
    await Promise.allSettled(this.holds);
    await Promise.allSettled(this.commits);
    // A commit refused for a moment (the group rebalancing) is tried again before leaving.
    for (
      let attempt = 1;
      !(await this.flush()) && attempt < STOP_COMMIT_ATTEMPTS && this.live;
      attempt++
    ) {
      await new Promise((resolve) => setTimeout(resolve, COMMIT_RETRY_MS));
    }
    if (this.pending.size > 0) {
      this.log(
        'warn',
        'Could not commit positions before leaving; the next owner receives those records again',
        { groupId: this.config.groupId },
      );
    }
    this.disconnected = true;
    clearTimeout(this.flushTimer);
    await this.consumer.disconnect();
    clearTimeout(this.flushTimer);
  }
}
