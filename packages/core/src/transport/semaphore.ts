/**
 * Bounds how many messages a transport hands to `onMessage` at once from one queue (its
 * `concurrency`), across the partitions or links it reads that queue through: one for the input
 * queue with its events, one for the instance queue. For transport authors.
 */
export class Semaphore {
  private available: number;
  private readonly waiting: Array<() => void> = [];

  constructor(permits: number) {
    this.available = permits;
  }

  /** Takes a permit if one is free, without waiting (and without a promise). */
  tryAcquire(): boolean {
    if (this.available === 0) return false;
    this.available--;
    return true;
  }

  acquire(): Promise<void> {
    if (this.available > 0) {
      this.available--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.available++;
  }
}
