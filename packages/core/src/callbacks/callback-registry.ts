import {
  RequestAbortedError,
  RequestTimeoutError,
  type TidingsError,
  UsageError,
} from '../errors.js';
import type { Reply, ReplyExpectation } from './reply.js';

/**
 * One request waiting for its first correlated reply. A class, not closures: with 100k requests
 * pending, every captured context counts (see docs/benchmarks.md, heap per pending request).
 */
export class PendingRequest<S = unknown, R = unknown> {
  correlationId = '';
  /** Whole milliseconds on the `performance.now()` clock: a small integer is stored unboxed. */
  deadline = 0;
  /** Set only for requests with an AbortSignal. */
  abort: { readonly signal: AbortSignal; readonly listener: () => void } | undefined = undefined;

  constructor(
    readonly messageType: string,
    readonly expect: ReplyExpectation,
    private readonly callback: (reply: Reply, state: S) => R | Promise<R>,
    private readonly state: S,
    private readonly resolve: (value: Awaited<R>) => void,
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
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Deadlines of one timeout length, in registration order: they expire in that order, so one
 * timer per distinct timeout serves every pending request (no timer object per request).
 */
class DeadlineQueue {
  constructor(readonly timeoutMs: number) {}
  private items: PendingRequest[] = [];
  private head = 0;
  timer: NodeJS.Timeout | undefined;

  get first(): PendingRequest | undefined {
    return this.items[this.head];
  }
  push(entry: PendingRequest): void {
    this.items.push(entry);
  }
  shift(): void {
    this.items[this.head++] = undefined as unknown as PendingRequest;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
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
  private readonly waiters: Array<() => void> = [];
  private reserved = 0;

  constructor(private readonly maxPending: number) {}

  /** Requests awaiting a reply. */
  get size(): number {
    return this.pending.size;
  }

  /** Callers waiting for a slot because `maxPending` is reached. */
  get waiting(): number {
    return this.waiters.length;
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
    if (this.pending.size + this.reserved < this.maxPending && this.waiters.length === 0) {
      this.reserved++;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const leave = () => {
        const index = this.waiters.indexOf(wake);
        if (index >= 0) this.waiters.splice(index, 1);
        signal?.removeEventListener('abort', onAbort);
        clearTimeout(timer);
      };
      const onAbort = () => {
        leave();
        reject(new RequestAbortedError(messageType, signal?.reason));
      };
      const wake = () => {
        leave();
        this.reserved++;
        resolve();
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          leave();
          reject(new RequestTimeoutError(messageType, timeoutMs, '(not sent: no free slot)'));
        }, timeoutMs);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(wake);
    });
  }

  /** Gives back a reserved slot that was not used (the request failed before registering). */
  release(): void {
    this.reserved--;
    this.wakeNext();
  }

  /** Turns a reserved slot into a pending entry with its timeout and abort handling. */
  register(correlationId: string, entry: PendingRequest, settings: RegisterSettings): void {
    if (this.pending.has(correlationId)) {
      this.release();
      throw new UsageError(
        `A request with correlation id '${correlationId}' is already pending; message ids must be unique.`,
      );
    }
    this.reserved--;
    entry.correlationId = correlationId;
    entry.deadline = Math.ceil(performance.now()) + settings.timeoutMs;
    this.pending.set(correlationId, entry);
    this.scheduleTimeout(entry, settings.timeoutMs);
    const signal = settings.signal;
    if (signal) {
      const listener = () => {
        if (this.remove(correlationId) === entry) {
          entry.fail(new RequestAbortedError(entry.messageType, signal.reason));
        }
      };
      entry.abort = { signal, listener };
      signal.addEventListener('abort', listener, { once: true });
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
    if (entry.abort) entry.abort.signal.removeEventListener('abort', entry.abort.listener);
    this.wakeNext();
    if (this.pending.size === 0) this.clearTimers();
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
    while (this.waiters.length > 0) this.waiters.shift()?.();
    this.clearTimers();
  }

  private scheduleTimeout(entry: PendingRequest, timeoutMs: number): void {
    let queue = this.deadlines.get(timeoutMs);
    if (queue === undefined) {
      queue = new DeadlineQueue(timeoutMs);
      this.deadlines.set(timeoutMs, queue);
    }
    queue.push(entry);
    if (queue.timer === undefined) this.armTimer(queue);
  }

  private armTimer(queue: DeadlineQueue): void {
    const first = queue.first;
    if (first === undefined) return;
    const delay = Math.max(0, Math.ceil(first.deadline - performance.now()));
    queue.timer = setTimeout(() => {
      queue.timer = undefined;
      this.expire(queue);
    }, delay);
  }

  private expire(queue: DeadlineQueue): void {
    const now = performance.now();
    for (let entry = queue.first; entry !== undefined; entry = queue.first) {
      // Entries already answered, aborted or replaced are skipped: only live ones time out.
      if (this.pending.get(entry.correlationId) !== entry) {
        queue.shift();
        continue;
      }
      if (entry.deadline > now) break;
      queue.shift();
      this.remove(entry.correlationId);
      entry.fail(new RequestTimeoutError(entry.messageType, queue.timeoutMs, entry.correlationId));
    }
    this.armTimer(queue);
  }

  /** Nothing pending: drop the timers so an idle endpoint holds no handles. */
  private clearTimers(): void {
    for (const queue of this.deadlines.values()) clearTimeout(queue.timer);
    this.deadlines.clear();
  }

  private wakeNext(): void {
    while (this.waiters.length > 0 && this.pending.size + this.reserved < this.maxPending) {
      this.waiters.shift()?.();
    }
  }
}
