import { type FSWatcher, watch } from 'node:fs';
import type { Logger } from '@tidings/core';
import { type MessageOutcome, QueueSlots, type ReceiveSettings } from '@tidings/core/transport';
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
 * Consumes one of an endpoint's queues: claims ready files by rename (so competing receivers, in
 * this process or another, each get a message once), hands them to core, then deletes (complete)
 * or renames back (abandon). A file-system watcher wakes it; a short poll catches what the watcher
 * misses. At most `concurrency` messages are in flight (its `QueueSlots`): the endpoint makes one
 * receiver per queue, so replies on the instance queue have slots of their own.
 */
export class Receiver {
  private active = false;
  /** Messages handed to core and not settled yet; `close` puts back those not answered. */
  private readonly inFlight = new Set<InFlight>();
  private readonly slots: QueueSlots;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  /** Names listed but not yet tried. */
  private candidates: string[] = [];
  /** The queue may have new files since it was last listed. */
  private dirty = false;
  private pumping: Promise<void> | undefined;
  private pumpAgain = false;
  private lastError = '';

  constructor(
    private readonly host: ReceiverHost,
    readonly queue: string,
    private readonly settings: ReceiveSettings,
  ) {
    this.slots = new QueueSlots(settings.concurrency);
  }

  get isActive(): boolean {
    return this.active;
  }

  start(): void {
    this.active = true;
    try {
      const watcher = watch(this.host.store.queueDir(this.queue), { persistent: false }, () =>
        this.wake(),
      );
      // A watcher is only a hint: if it fails, the poll still finds the files.
      watcher.on('error', () => {});
      this.watcher = watcher;
    } catch {
      // Some file systems (network shares) cannot be watched; polling alone works there.
    }
    this.dirty = true;
    // Referenced on purpose: a receiving endpoint keeps its process alive, as a broker socket would.
    this.poll = setInterval(() => {
      this.dirty = true;
      void this.pump();
    }, this.host.pollIntervalMs);
    void this.pump();
  }

  /** Called when a message was put back into the queue by this process. */
  wake(): void {
    if (!this.active) return;
    this.dirty = true;
    void this.pump();
  }

  stop(): void {
    this.active = false;
    clearInterval(this.poll);
    this.poll = undefined;
    this.watcher?.close();
    this.watcher = undefined;
    this.candidates = [];
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
        while (this.active && this.slots.tryAcquire()) {
          let claim: Claim | undefined;
          try {
            claim = await this.claimNext();
          } finally {
            if (claim === undefined) this.slots.release();
          }
          if (claim === undefined) break;
          if (!this.active) {
            // Stopped while claiming: put it back untouched, this delivery never happened.
            this.slots.release();
            await this.host.store.release(claim, false);
            break;
          }
          // The slot is the message's now: `deliver` gives it back once it is settled.
          this.deliver(claim);
        }
      } while (this.pumpAgain && this.active);
      this.lastError = '';
    } catch (error) {
      // The next poll tries again; say so once, not on every tick.
      this.warn('receive', error);
    }
  }

  /** Claims the next ready message. */
  private async claimNext(): Promise<Claim | undefined> {
    if (!this.active) return undefined;
    let names = this.candidates;
    if (names.length === 0 && this.dirty) {
      this.dirty = false;
      names = await this.host.store.listReady(this.queue);
      this.candidates = names;
    }
    while (names.length > 0 && this.active) {
      const name = names.shift() as string;
      const claim = await this.host.store.claim(this.queue, name, this.host.owner);
      if (claim !== undefined) return claim;
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
        this.slots.release();
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
      if (outcome !== 'complete') this.wake();
    } catch (error) {
      this.warn(outcome === 'complete' ? 'complete' : 'abandon', error);
    }
  }

  private warn(what: string, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    if (message === this.lastError) return;
    this.lastError = message;
    this.host.logger.warn(`Learning transport could not ${what} a message: ${message}`, {
      queues: this.queue,
    });
  }
}
