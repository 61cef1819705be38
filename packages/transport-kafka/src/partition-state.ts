import type { MessageOutcome, QueueSlots } from '@tidings/core/transport';
import type { BatchControl, IncomingRecord, RecordBatch } from './kafka-client.js';

export interface PartitionHost {
  readonly slots: QueueSlots;
  /** Hands one record to core. Never rejects. */
  deliver(record: IncomingRecord, batch: RecordBatch): Promise<MessageOutcome>;
  /** True once the endpoint stops receiving: records not yet handed over stay for the next owner. */
  isStopping(): boolean;
  /** Records the partition's position: every record before `nextOffset` has a durable outcome. */
  recordPosition(topic: string, partition: number, nextOffset: string): void;
  /** Wait before handing an abandoned record over again. */
  readonly redeliveryDelayMs: number;
  /** Most records of one partition taken in and not yet done; the partition's fetch then pauses. */
  readonly maxBufferedPerPartition: number;
}

interface Entry {
  readonly offset: bigint;
  done: boolean;
  /** The predecessor's entry for this record, if it took it in too: completed there, it is skipped here. */
  readonly earlierRun: Entry | undefined;
}

/** Stands for a record a predecessor took in and completed, its entry gone already. */
const COMPLETED: Entry = { offset: -1n, done: true, earlierRun: undefined };

/** True if a predecessor (or its predecessor, ...) completed the record: its outcome is durable. */
function completedEarlier(entry: Entry): boolean {
  for (let run = entry.earlierRun; run !== undefined; run = run.earlierRun) {
    if (run.done) return true;
  }
  return false;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One partition as this consumer currently owns it: the records taken in, in offset order, and
 * the last record of each key, which the next one with that key waits for.
 */
export class PartitionState {
  /** Records taken in and not yet part of the recorded position, in offset order. */
  private readonly entries: Entry[] = [];
  private readonly tails = new Map<string | null, Promise<boolean>>();
  /** Highest offset taken in: a fetch that replays older records (after a rebalance) skips them. */
  private highest = -1n;
  /** Lowest offset taken in; -1 before the first. */
  private first = -1n;
  /** Set while the partition's fetch is paused because its buffer is full. */
  private resumeFetch: (() => void) | undefined;
  /** Set when the partition is no longer ours: records still running record nothing. */
  revoked = false;

  /**
   * @param predecessor This partition's state from before it was revoked (or its consumer
   * replaced), with records still running: a key's records here start once its records there
   * have settled, so one key never runs twice at once in this process.
   */
  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly deps: PartitionHost,
    private predecessor?: PartitionState,
  ) {
    this.replaced = predecessor;
  }

  /**
   * The predecessor, kept (running or not) until this state has taken in past its highest offset:
   * records it took in come again in this state's fetch, and those it completed are skipped.
   */
  private replaced: PartitionState | undefined;

  /** Records started and not finished (done, or given up because the endpoint stops). */
  private running = 0;

  /** Records of this partition started and not finished, here and in its predecessors. */
  get inFlight(): number {
    const inherited = this.predecessor?.inFlight ?? 0;
    // Read once per level: the chain is walked for every first record of a key.
    if (inherited === 0) this.predecessor = undefined;
    return this.running + inherited;
  }

  /** The predecessor while records run there; let go once none do. */
  private livePredecessor(): PartitionState | undefined {
    if (this.predecessor !== undefined && this.predecessor.inFlight === 0) {
      this.predecessor = undefined;
    }
    return this.predecessor;
  }

  /** Offset of the last record taken in; -1 before the first. */
  get lastTaken(): bigint {
    return this.highest;
  }

  /** The partition went to another member: records still running record nothing. */
  revoke(): void {
    this.revoked = true;
    // Takes nothing more in, so looks nothing up there.
    this.replaced = undefined;
    // Paused partitions stay paused across rebalances: one assigned here again must be fetched.
    this.resumeFetch?.();
    this.resumeFetch = undefined;
  }

  /**
   * Takes a batch in: starts every record (bounded by the shared slots and by the partition's
   * buffer) and returns once all are started, so the next fetch overlaps the handling. Records
   * with one key run one after another in offset order; other keys run concurrently. With the
   * buffer full, the rest of the batch is left to be fetched again once records at its head are
   * done: waiting here would hold up the fetch of every partition of this broker (kafkajs fetches
   * them together), so a slow record would stall partitions it has nothing to do with.
   */
  async take(batch: RecordBatch, control: BatchControl): Promise<void> {
    // Nothing below waits, so whether to go on is checked once.
    if (this.revoked || !control.isActive() || this.deps.isStopping()) return;
    // The fetch position moves on past every record taken in (once, when the loop ends); the
    // committed position only as records finish.
    let fetched: string | undefined;
    const replaced = this.replaced;
    try {
      for (const record of batch.records) {
        const offset = BigInt(record.offset);
        if (offset <= this.highest) {
          // Taken before (a rebalance replays from the committed position): only move the fetch on.
          fetched = record.offset;
          continue;
        }
        if (this.entries.length >= this.deps.maxBufferedPerPartition) {
          // Every time: a restarted consumer (or a hold let go) fetches it again unpaused.
          this.resumeFetch = control.pause();
          return;
        }
        if (this.highest < 0n) this.first = offset;
        this.highest = offset;
        fetched = record.offset;
        const entry: Entry = { offset, done: false, earlierRun: replaced?.entryFor(offset) };
        this.entries.push(entry);
        if (entry.earlierRun !== undefined && completedEarlier(entry)) {
          // Its outcome is durable already: it only counts for the position.
          entry.done = true;
          this.advance();
          continue;
        }
        const previous = this.tails.get(record.key);
        const earlier =
          previous === undefined ? this.livePredecessor()?.tailOf(record.key) : undefined;
        this.running++;
        const task =
          previous !== undefined
            ? this.runAfter(previous, entry, record, batch, control)
            : earlier !== undefined
              ? // Whatever became of it there (left for later, most likely): this one runs.
                earlier.then(() => this.run(entry, record, batch, control))
              : this.run(entry, record, batch, control);
        this.tails.set(record.key, task);
        void task.then(() => {
          this.running--;
          if (this.tails.get(record.key) === task) this.tails.delete(record.key);
        });
      }
    } finally {
      if (fetched !== undefined) control.markFetched(fetched);
      if (replaced !== undefined && this.highest >= replaced.highest) this.replaced = undefined;
    }
  }

  /**
   * This state's entry for a record it took in, for a successor that takes the record in again;
   * `COMPLETED` if its entry has left (entries leave the head only once done). Undefined if the
   * record was not taken in here.
   */
  private entryFor(offset: bigint): Entry | undefined {
    if (offset > this.highest || offset < this.first) return undefined;
    const { entries } = this;
    const head = entries[0];
    if (head === undefined || offset < head.offset) return COMPLETED;
    let low = 0;
    let high = entries.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const entry = entries[middle] as Entry;
      if (entry.offset === offset) return entry;
      if (entry.offset < offset) low = middle + 1;
      else high = middle - 1;
    }
    return undefined;
  }

  /** Settles once every record of `key` started here or in a predecessor has; undefined if none runs. */
  private tailOf(key: string | null): Promise<boolean> | undefined {
    return this.tails.get(key) ?? this.livePredecessor()?.tailOf(key);
  }

  /** A record waits for the one before it with its key; if that one is left for later, so is this. */
  private async runAfter(
    previous: Promise<boolean>,
    entry: Entry,
    record: IncomingRecord,
    batch: RecordBatch,
    control: BatchControl,
  ): Promise<boolean> {
    if (!(await previous)) return false;
    return this.run(entry, record, batch, control);
  }

  /**
   * Takes a handling slot and hands the record to core until its outcome is durable. Not async:
   * this runs for every record, and a free slot is taken without a promise.
   */
  private run(
    entry: Entry,
    record: IncomingRecord,
    batch: RecordBatch,
    control: BatchControl,
  ): Promise<boolean> {
    // Its key's earlier records, here and in the predecessor, have settled: so has the
    // predecessor's run of this record. Checked before `revoked`: a successor of this state
    // reads `done` too.
    if (entry.earlierRun !== undefined && completedEarlier(entry)) {
      entry.done = true;
      this.advance();
      return Promise.resolve(true);
    }
    const { slots } = this.deps;
    if (this.revoked || this.deps.isStopping()) return Promise.resolve(false);
    if (slots.tryAcquire()) return this.deliverHoldingSlot(entry, record, batch, control);
    return slots.acquire().then(() => {
      if (this.revoked || this.deps.isStopping()) {
        slots.release();
        return false;
      }
      return this.deliverHoldingSlot(entry, record, batch, control);
    });
  }

  private deliverHoldingSlot(
    entry: Entry,
    record: IncomingRecord,
    batch: RecordBatch,
    control: BatchControl,
  ): Promise<boolean> {
    return this.deps.deliver(record, batch).then((outcome) => {
      this.deps.slots.release();
      if (outcome !== 'complete') return this.redeliver(entry, record, batch, control);
      entry.done = true;
      this.advance();
      void control.heartbeat();
      return true;
    });
  }

  /**
   * Abandoned while still running (its outcome could not be made durable): hand it over again
   * here rather than rewinding the partition and replaying everything after it.
   */
  private async redeliver(
    entry: Entry,
    record: IncomingRecord,
    batch: RecordBatch,
    control: BatchControl,
  ): Promise<boolean> {
    await sleep(this.deps.redeliveryDelayMs);
    return this.run(entry, record, batch, control);
  }

  /** Moves the recorded position past the records at the head that are done. */
  private advance(): void {
    let last: Entry | undefined;
    while (this.entries[0]?.done) last = this.entries.shift();
    if (last !== undefined && !this.revoked) {
      this.deps.recordPosition(this.topic, this.partition, (last.offset + 1n).toString());
    }
    // Half the buffer free again: fetch on (not at one free place, which would pause again at once).
    if (
      this.resumeFetch !== undefined &&
      this.entries.length <= this.deps.maxBufferedPerPartition / 2 &&
      !this.revoked &&
      !this.deps.isStopping()
    ) {
      const resume = this.resumeFetch;
      this.resumeFetch = undefined;
      resume();
    }
  }
}
