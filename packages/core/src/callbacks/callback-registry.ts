import {
  RequestAbortedError,
  RequestTimeoutError,
  type TidingsError,
  UsageError,
} from '../errors.js';
import type { Reply, ReplyExpectation } from './reply.js';

/** One request waiting for its first correlated reply. */
export interface PendingRequest {
  readonly messageType: string;
  readonly expect: ReplyExpectation;
  /** Receives the reply (already checked and validated by the caller of `take`). */
  readonly complete: (reply: Reply) => void | Promise<void>;
  readonly fail: (error: Error) => void;
  timer?: NodeJS.Timeout | undefined;
  signal?: AbortSignal | undefined;
  onAbort?: (() => void) | undefined;
}

export interface RegisterSettings {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

/**
 * The in-memory table of requests awaiting a reply, keyed by correlation id. Entries are added
 * before the request is dispatched (so no reply can race them) and removed by exactly one of:
 * the first reply, the timeout, the abort signal, or `rejectAll` at stop. `maxPending` bounds it;
 * callers wait in `acquire` for a free slot (backpressure).
 */
export class CallbackRegistry {
  private readonly pending = new Map<string, PendingRequest>();
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
   * Waits until a slot is free and reserves it. `register` or `release` must follow.
   * Rejects if `signal` aborts while waiting.
   */
  acquire(messageType: string, signal?: AbortSignal): Promise<void> | undefined {
    if (this.pending.size + this.reserved < this.maxPending && this.waiters.length === 0) {
      this.reserved++;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const index = this.waiters.indexOf(wake);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(new RequestAbortedError(messageType, signal?.reason));
      };
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        this.reserved++;
        resolve();
      };
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
    this.pending.set(correlationId, entry);
    entry.timer = setTimeout(() => {
      if (this.remove(correlationId) === entry) {
        entry.fail(new RequestTimeoutError(entry.messageType, settings.timeoutMs, correlationId));
      }
    }, settings.timeoutMs);
    const signal = settings.signal;
    if (signal) {
      entry.signal = signal;
      entry.onAbort = () => {
        if (this.remove(correlationId) === entry) {
          entry.fail(new RequestAbortedError(entry.messageType, signal.reason));
        }
      };
      signal.addEventListener('abort', entry.onAbort, { once: true });
    }
  }

  /** Removes and returns the entry for a reply's correlation id: the first reply wins. */
  take(correlationId: string): PendingRequest | undefined {
    const entry = this.pending.get(correlationId);
    if (entry !== undefined) this.remove(correlationId);
    return entry;
  }

  /** Removes an entry without completing it (e.g. its dispatch failed). */
  remove(correlationId: string): PendingRequest | undefined {
    const entry = this.pending.get(correlationId);
    if (entry === undefined) return undefined;
    this.pending.delete(correlationId);
    clearTimeout(entry.timer);
    if (entry.onAbort) entry.signal?.removeEventListener('abort', entry.onAbort);
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
    while (this.waiters.length > 0) this.waiters.shift()?.();
  }

  private wakeNext(): void {
    while (this.waiters.length > 0 && this.pending.size + this.reserved < this.maxPending) {
      this.waiters.shift()?.();
    }
  }
}
