/**
 * Bounds how many messages a transport hands to `onMessage` at once from one queue (its
 * `concurrency`), across the partitions, links or channels it reads that queue through: one for
 * the input queue with its events, one for the instance queue (ADR 9). Work waits in arrival order.
 *
 * Two ways to wait: `whenFree(task)` runs `task` synchronously once a slot is taken (no promise,
 * for the delivery path of a push consumer), `acquire()` resolves once one is (for pull loops).
 * Either way the holder calls `release()` exactly once.
 */
export class QueueSlots {
  private free: number;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly limit: number) {
    this.free = limit;
  }

  /** Slots taken now. */
  get active(): number {
    return this.limit - this.free;
  }

  /** Work waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Takes a slot if one is free, without waiting (and without a promise). */
  tryAcquire(): boolean {
    if (this.free === 0) return false;
    this.free--;
    return true;
  }

  /** Resolves once a slot is taken for the caller. */
  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Runs `task` now if a slot is free, else when one is; the slot is taken for it either way. */
  whenFree(task: () => void): void {
    if (this.tryAcquire()) task();
    else this.waiting.push(task);
  }

  /** Gives a slot back: the oldest waiting work takes it, or it becomes free. */
  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.free++;
  }

  /**
   * Forgets the work still waiting, which never runs (a stop, or the connection it came through is
   * gone and the broker will deliver it again). Returns how many were dropped.
   */
  dropWaiting(): number {
    return this.waiting.splice(0).length;
  }
}
