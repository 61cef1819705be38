import {
  RequestAbortedError,
  RequestTimeoutError,
  type TidingsError,
  UsageError,
} from '../errors.js';
import { type LongTimer, MAX_TIMER_MS, setLongTimeout } from '../long-timer.js';
import type { Reply, ReplyExpectation } from './reply.js';
import { SharedAbortListeners } from './shared-abort-listeners.js';

// Method signatures compare their parameters both ways, so an entry made for any state and result
// type is an entry of the registry's (`PendingRequest<unknown, unknown>`) without a cast.
type ReplyCallback<S, R> = { call(reply: Reply, state: S): R | Promise<R> }['call'];
type Resolver<R> = { call(value: Awaited<R>): void }['call'];

/**
 * One request waiting for its first correlated reply. A class, not closures: with 100k requests
 * pending, every captured context counts (see docs/benchmarks.md, heap per pending request).
 */
export class PendingRequest<S = unknown, R = unknown> {
  correlationId = '';
  /** The timeout the caller asked for: reported on timeout. */
  timeoutMs = 0;
  /** What was left of it at registration (less after a wait for a slot): picks its deadline queue. */
  scheduledMs = 0;
  /**
   * Whole milliseconds on the `performance.now()` clock: a small integer is stored unboxed.
   * `SETTLED` once the entry has left the registry.
   */
  deadline = 0;
  /** Set only for requests with an AbortSignal. */
  signal: AbortSignal | undefined = undefined;

  constructor(
    readonly messageType: string,
    readonly expect: ReplyExpectation,
    private readonly callback: ReplyCallback<S, R>,
    private readonly state: S,
    private readonly resolve: Resolver<R>,
    readonly fail: (error: unknown) => void,
  ) {}

  /** Runs the callback with the reply; returns a promise only if the callback is asynchronous. */
  complete(reply: Reply): void | Promise<void> {
    let value: R | Promise<R>;
    try {
      value = this.callback(reply, this.state);
    } catch (error) {
      this.fail(error);
      return;
    }
    if (value instanceof Promise) {
      return value.then(this.resolve as (v: R) => void, this.fail);
    }
    this.resolve(value as Awaited<R>);
  }
}

export interface RegisterSettings {
  /** From now: sets the deadline. */
  readonly timeoutMs: number;
  /** The timeout the caller asked for, when some of it went waiting for a slot: reported. */
  readonly askedTimeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Timeouts are grouped in buckets this wide, one deadline queue and one timer per bucket, so
 * requests with many distinct timeouts (a request that waited for a slot passes what is left of
 * its timeout; a web request passes its remaining budget) share a few timers.
 */
const BUCKET_MS = 8;
/** `PendingRequest.deadline` of an entry that has left the registry. */
const SETTLED = -1;
/**
 * Queues kept, with their unref'd timer, after their last live entry left. Bounded: timeouts
 * spread over many buckets (web budgets) must not leave a timer behind for each.
 */
const MAX_IDLE_QUEUES = 8;

/**
 * The pending requests whose timeouts fall in one bucket, in registration order, under one timer
 * (no timer object per request). Each keeps its exact deadline and never times out before it.
 * Within a bucket, an entry's deadline is less than `BUCKET_MS` after that of any entry registered
 * later, so expiring from the head in order makes a request at most `BUCKET_MS - 1` ms late (and
 * not at all when its neighbours share its timeout, the common case).
 *
 * Settled entries (answered, aborted, timed out) leave the head at once and are compacted away
 * once they outnumber the live ones, so a queue holds at most twice its live entries.
 *
 * A queue left with no live entry keeps its timer, unref'd, until it fires (a few are kept, see
 * `MAX_IDLE_QUEUES`): requests one after another (concurrency 1) then reuse it instead of setting
 * and clearing a timer each. It was armed for a deadline before that of any entry registered
 * later (within the bucket's width), so it never fires late for them; firing early, it re-arms.
 */
class DeadlineQueue {
  private items: PendingRequest[] = [];
  private head = 0;
  /** Entries not settled yet. Settled ones never sit at the head. */
  live = 0;
  timer: NodeJS.Timeout | undefined = undefined;

  constructor(readonly bucket: number) {}

  get first(): PendingRequest | undefined {
    return this.items[this.head];
  }
  /** Entries held, settled ones included. */
  get length(): number {
    return this.items.length - this.head;
  }
  push(entry: PendingRequest): void {
    this.items.push(entry);
    this.live++;
  }
  /** Accounts for an entry of this queue whose deadline was just set to `SETTLED`. */
  settle(entry: PendingRequest): void {
    this.live--;
    if (this.live === 0) {
      this.items = [];
      this.head = 0;
    } else if (this.items[this.head] === entry) {
      // Replies mostly come in request order: the head leaves, with settled ones behind it.
      do this.shift();
      while (this.items[this.head]?.deadline === SETTLED);
    } else if (this.length > 2 * this.live) {
      this.compact();
    }
  }
  private shift(): void {
    this.items[this.head++] = undefined as unknown as PendingRequest;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
  /** Keeps the live entries, in order (amortised: runs after as many settles as it keeps). */
  private compact(): void {
    const items = this.items;
    let kept = 0;
    for (let i = this.head; i < items.length; i++) {
      const entry = items[i] as PendingRequest;
      if (entry.deadline !== SETTLED) items[kept++] = entry;
    }
    items.length = kept;
    this.head = 0;
  }
}

/**
 * The in-memory table of requests awaiting a reply, keyed by correlation id. Entries are added
 * before the request is dispatched (so no reply can race them) and removed by exactly one of:
 * the first reply, the timeout, the abort signal, or `rejectAll` at stop. `maxPending` bounds it;
 * callers wait in `acquire` for a free slot (backpressure).
 */
export class CallbackRegistry {
  private readonly pending = new Map<string, PendingRequest>();
  private readonly deadlines = new Map<number, DeadlineQueue>();
  /** Queues in `deadlines` with no live entry, their timer unref'd (see `DeadlineQueue`). */
  private idleQueues = 0;
  /** Callers waiting for a slot, first come first served (a Set: an abort leaves in O(1)). */
  private readonly waiters = new Set<() => void>();
  private reserved = 0;
  /** One listener per signal for pending requests, however many share it. */
  private readonly pendingAborts = new SharedAbortListeners<PendingRequest>((entry, signal) => {
    if (this.remove(entry.correlationId) === entry) {
      entry.fail(new RequestAbortedError(entry.messageType, signal.reason));
    }
  });
  /** Likewise for callers waiting for a slot: each member leaves the queue and rejects. */
  private readonly waiterAborts = new SharedAbortListeners<(reason: unknown) => void>(
    (onAbort, signal) => onAbort(signal.reason),
  );

  constructor(private readonly maxPending: number) {}

  /** Requests awaiting a reply. */
  get size(): number {
    return this.pending.size;
  }

  /** Callers waiting for a slot because `maxPending` is reached. */
  get waiting(): number {
    return this.waiters.size;
  }

  /** Signals with an 'abort' listener of this registry: one each, however many requests share it. */
  get abortSignals(): number {
    return this.pendingAborts.signals + this.waiterAborts.signals;
  }

  /**
   * Deadline bookkeeping, for tests and diagnostics: queues holding pending requests, their armed
   * timers, queued entries, and idle queues kept for reuse (their timers unref'd).
   */
  get deadlineStats(): { queues: number; timers: number; entries: number; idle: number } {
    let timers = 0;
    let entries = 0;
    for (const queue of this.deadlines.values()) {
      if (queue.live === 0) continue;
      if (queue.timer !== undefined) timers++;
      entries += queue.length;
    }
    return {
      queues: this.deadlines.size - this.idleQueues,
      timers,
      entries,
      idle: this.idleQueues,
    };
  }

  /**
   * Reserves a slot, waiting while `maxPending` is reached (undefined: reserved at once).
   * `register` or `release` must follow. The wait counts against the request's timeout, and
   * rejects if `signal` aborts while waiting.
   */
  acquire(
    messageType: string,
    signal?: AbortSignal,
    timeoutMs?: number,
  ): Promise<void> | undefined {
    if (this.pending.size + this.reserved < this.maxPending && this.waiters.size === 0) {
      this.reserved++;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      let timer: LongTimer | undefined;
      const leave = () => {
        this.waiters.delete(wake);
        if (signal !== undefined) this.waiterAborts.delete(signal, onAbort);
        timer?.clear();
      };
      const onAbort = (reason: unknown) => {
        leave();
        reject(new RequestAbortedError(messageType, reason));
      };
      const wake = () => {
        leave();
        this.reserved++;
        resolve();
      };
      if (timeoutMs !== undefined) {
        // Long timeouts are chained: a plain timer of 2^31 ms or more would fire at once.
        timer = setLongTimeout(() => {
          leave();
          reject(new RequestTimeoutError(messageType, timeoutMs, '(not sent: no free slot)'));
        }, timeoutMs);
      }
      if (signal !== undefined) this.waiterAborts.add(signal, onAbort);
      this.waiters.add(wake);
    });
  }

  /** Gives back a reserved slot that was not used (the request failed before registering). */
  release(): void {
    this.reserved--;
    this.wakeNext();
  }

  /**
   * Turns a reserved slot into a pending entry with its timeout and abort handling. `entry` is
   * new: an entry is registered once.
   */
  register(correlationId: string, entry: PendingRequest, settings: RegisterSettings): void {
    if (this.pending.has(correlationId)) {
      this.release();
      throw new UsageError(
        `A request with correlation id '${correlationId}' is already pending; message ids must be unique.`,
      );
    }
    this.reserved--;
    entry.correlationId = correlationId;
    entry.timeoutMs = settings.askedTimeoutMs ?? settings.timeoutMs;
    entry.scheduledMs = settings.timeoutMs;
    entry.deadline = Math.ceil(performance.now()) + settings.timeoutMs;
    this.pending.set(correlationId, entry);
    this.scheduleTimeout(entry);
    const signal = settings.signal;
    if (signal) {
      entry.signal = signal;
      this.pendingAborts.add(signal, entry);
    }
  }

  /** Removes and returns the entry for a reply's correlation id: the first reply wins. */
  take(correlationId: string): PendingRequest | undefined {
    return this.remove(correlationId);
  }

  /** Removes an entry without completing it (e.g. its dispatch failed). */
  remove(correlationId: string): PendingRequest | undefined {
    const entry = this.pending.get(correlationId);
    if (entry === undefined) return undefined;
    this.pending.delete(correlationId);
    if (entry.signal !== undefined) this.pendingAborts.delete(entry.signal, entry);
    this.unschedule(entry);
    this.wakeNext();
    return entry;
  }

  /**
   * Fails every pending request (the endpoint is stopping) and wakes every waiter, which then
   * sees the endpoint's state and gives its slot back.
   */
  rejectAll(error: TidingsError): void {
    for (const correlationId of [...this.pending.keys()]) {
      this.remove(correlationId)?.fail(error);
    }
    for (const wake of [...this.waiters]) wake();
    // Nothing pending: idle timers go too.
    if (this.pending.size === 0) {
      for (const queue of this.deadlines.values()) this.drop(queue);
      this.idleQueues = 0;
    }
  }

  private scheduleTimeout(entry: PendingRequest): void {
    const bucket = Math.ceil(entry.scheduledMs / BUCKET_MS);
    let queue = this.deadlines.get(bucket);
    if (queue === undefined) {
      queue = new DeadlineQueue(bucket);
      this.deadlines.set(bucket, queue);
    } else if (queue.live === 0) {
      // An idle queue: its timer, armed before this entry's deadline, holds the process again.
      this.idleQueues--;
      queue.timer?.ref();
    }
    queue.push(entry);
    if (queue.timer === undefined) this.armTimer(queue);
  }

  /**
   * Takes a leaving entry out of its deadline queue. A queue left with no live entry is kept
   * idle, its timer unref'd, while few are; otherwise it goes with its timer.
   */
  private unschedule(entry: PendingRequest): void {
    const bucket = Math.ceil(entry.scheduledMs / BUCKET_MS);
    // A pending entry's queue stays in the map until its last live entry leaves.
    const queue = this.deadlines.get(bucket) as DeadlineQueue;
    entry.deadline = SETTLED;
    queue.settle(entry);
    if (queue.live > 0) return;
    if (queue.timer !== undefined && this.idleQueues < MAX_IDLE_QUEUES) {
      this.idleQueues++;
      queue.timer.unref();
    } else this.drop(queue);
  }

  /** Removes a queue with no live entry, and its timer (the caller counts idle queues). */
  private drop(queue: DeadlineQueue): void {
    clearTimeout(queue.timer);
    queue.timer = undefined;
    this.deadlines.delete(queue.bucket);
  }

  private armTimer(queue: DeadlineQueue): void {
    const first = queue.first;
    if (first === undefined) return;
    const delay = Math.min(
      MAX_TIMER_MS,
      Math.max(0, Math.ceil(first.deadline - performance.now())),
    );
    queue.timer = setTimeout(() => {
      queue.timer = undefined;
      this.expire(queue);
    }, delay);
  }

  private expire(queue: DeadlineQueue): void {
    if (queue.live === 0) {
      // An idle queue's timer: nobody reused it.
      if (this.deadlines.get(queue.bucket) === queue) {
        this.deadlines.delete(queue.bucket);
        this.idleQueues--;
      }
      return;
    }
    const now = performance.now();
    // The head is always live; an entry whose deadline has not come stops the walk (the timer
    // may fire early, or for a head that has since left).
    for (let entry = queue.first; entry !== undefined; entry = queue.first) {
      if (entry.deadline > now) break;
      this.remove(entry.correlationId);
      entry.fail(new RequestTimeoutError(entry.messageType, entry.timeoutMs, entry.correlationId));
    }
    // A callback above may have registered into this queue and armed it already.
    if (queue.live > 0 && queue.timer === undefined) this.armTimer(queue);
  }

  private wakeNext(): void {
    for (const wake of this.waiters) {
      if (this.pending.size + this.reserved >= this.maxPending) break;
      // Leaves the set as it runs; iteration goes on with the next one.
      wake();
    }
  }
}
