import { type FSWatcher, watch } from 'node:fs';
import type { Logger } from '@tidings/core';
import type { MessageOutcome, ReceiveSettings } from '@tidings/core/transport';
import type { Claim, FileStore } from './file-store.js';

interface InFlight {
  readonly claim: Claim;
  /** onMessage has answered; its settlement is `settling`. */
  answered: boolean;
  /** Put back by `close` before onMessage answered: the answer, when it comes, is ignored. */
  released: boolean;
  settling: Promise<void> | undefined;
}

export interface ReceiverHost {
  readonly store: FileStore;
  readonly owner: string;
  readonly logger: Logger;
  readonly pollIntervalMs: number;
}

/**
 * Consumes one endpoint's queues: claims ready files by rename (so competing receivers, in this
 * process or another, each get a message once), hands them to core, then deletes (complete) or
 * renames back (abandon). A file-system watcher wakes it; a short poll catches what the watcher misses.
 * At most `concurrency` messages are in flight across its queues: the transport makes one receiver
 * per queue, so replies on the instance queue have slots of their own.
 */
export class Receiver {
  private active = false;
  private readonly inFlight = new Set<InFlight>();
  private readonly watchers: FSWatcher[] = [];
  private poll: NodeJS.Timeout | undefined;
  /** Names listed but not yet tried, per queue. */
  private readonly candidates = new Map<string, string[]>();
  /** Queues that may have new files since they were last listed. */
  private readonly dirty = new Set<string>();
  private pumping: Promise<void> | undefined;
  private pumpAgain = false;
  private nextQueue = 0;
  private lastError = '';

  constructor(
    private readonly host: ReceiverHost,
    readonly queues: readonly string[],
    private readonly settings: ReceiveSettings,
  ) {}

  get isActive(): boolean {
    return this.active;
  }

  start(): void {
    this.active = true;
    for (const queue of this.queues) {
      try {
        const watcher = watch(this.host.store.queueDir(queue), { persistent: false }, () =>
          this.wake(queue),
        );
        // A watcher is only a hint: if it fails, the poll still finds the files.
        watcher.on('error', () => {});
        this.watchers.push(watcher);
      } catch {
        // Some file systems (network shares) cannot be watched; polling alone works there.
      }
      this.dirty.add(queue);
    }
    // Referenced on purpose: a receiving endpoint keeps its process alive, as a broker socket would.
    this.poll = setInterval(() => {
      for (const queue of this.queues) this.dirty.add(queue);
      void this.pump();
    }, this.host.pollIntervalMs);
    void this.pump();
  }

  /** Called when a message was put back into one of our queues by this process. */
  wake(queue: string): void {
    if (!this.active) return;
    this.dirty.add(queue);
    void this.pump();
  }

  stop(): void {
    this.active = false;
    clearInterval(this.poll);
    this.poll = undefined;
    for (const watcher of this.watchers.splice(0)) watcher.close();
    this.candidates.clear();
  }

  /**
   * Stops, puts back every message whose handling has not answered yet (so it is not held until
   * this process exits), and waits for the settlements under way.
   */
  async close(): Promise<void> {
    this.stop();
    await this.pumping;
    const waits: Promise<unknown>[] = [];
    for (const entry of this.inFlight) {
      if (entry.answered) {
        if (entry.settling) waits.push(entry.settling);
        continue;
      }
      entry.released = true;
      waits.push(
        this.host.store.release(entry.claim).catch((error) => this.warn('release', error)),
      );
    }
    await Promise.all(waits);
  }

  private pump(): Promise<void> {
    if (this.pumping !== undefined) {
      this.pumpAgain = true;
      return this.pumping;
    }
    this.pumping = this.pumpLoop().finally(() => {
      this.pumping = undefined;
    });
    return this.pumping;
  }

  private async pumpLoop(): Promise<void> {
    try {
      do {
        this.pumpAgain = false;
        while (this.active && this.inFlight.size < this.settings.concurrency) {
          const claim = await this.claimNext();
          if (claim === undefined) break;
          if (!this.active) {
            // Stopped while claiming: put it back untouched, this delivery never happened.
            await this.host.store.release(claim, false);
            break;
          }
          this.deliver(claim);
        }
      } while (this.pumpAgain && this.active);
      this.lastError = '';
    } catch (error) {
      // The next poll tries again; say so once, not on every tick.
      this.warn('receive', error);
    }
  }

  /** Claims the next ready message, taking the queues in turn. */
  private async claimNext(): Promise<Claim | undefined> {
    const count = this.queues.length;
    for (let i = 0; i < count && this.active; i++) {
      const index = (this.nextQueue + i) % count;
      const queue = this.queues[index] as string;
      let names = this.candidates.get(queue);
      if ((names === undefined || names.length === 0) && this.dirty.has(queue)) {
        this.dirty.delete(queue);
        names = await this.host.store.listReady(queue);
        this.candidates.set(queue, names);
      }
      while (names !== undefined && names.length > 0 && this.active) {
        const name = names.shift() as string;
        const claim = await this.host.store.claim(queue, name, this.host.owner);
        if (claim !== undefined) {
          this.nextQueue = (index + 1) % count;
          return claim;
        }
      }
    }
    return undefined;
  }

  private deliver(claim: Claim): void {
    const entry: InFlight = { claim, answered: false, released: false, settling: undefined };
    this.inFlight.add(entry);
    const handle = async (): Promise<MessageOutcome> => {
      const envelope = await this.host.store.read(claim);
      return this.settings.onMessage({
        messageId: envelope.messageId,
        headers: envelope.headers,
        body: envelope.body,
        queue: claim.queue,
        deliveryCount: claim.delivery,
      });
    };
    handle()
      .catch((error: unknown): MessageOutcome => {
        this.warn('handle', error);
        return 'abandon';
      })
      .then((outcome) => {
        if (entry.released) return;
        entry.answered = true;
        entry.settling = this.settle(claim, outcome);
        return entry.settling;
      })
      .finally(() => {
        this.inFlight.delete(entry);
        void this.pump();
      });
  }

  private async settle(claim: Claim, outcome: MessageOutcome): Promise<void> {
    try {
      const ours =
        outcome === 'complete'
          ? await this.host.store.complete(claim)
          : await this.host.store.release(claim);
      if (!ours) {
        this.host.logger.warn(
          'A message was taken back from this receiver before it was settled (its lease expired); it may be handled twice',
          { queue: claim.queue, file: claim.path },
        );
      }
      if (outcome !== 'complete') this.wake(claim.queue);
    } catch (error) {
      this.warn(outcome === 'complete' ? 'complete' : 'abandon', error);
    }
  }

  private warn(what: string, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    if (message === this.lastError) return;
    this.lastError = message;
    this.host.logger.warn(`Learning transport could not ${what} a message: ${message}`, {
      queues: this.queues.join(', '),
    });
  }
}
