import type { Logger } from '@tidings/core';
import type { FileStore } from './file-store.js';
import type { ResolvedLearningOptions } from './options.js';
import type { Receiver } from './receiver.js';

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as { code?: string }).code === 'EPERM';
  }
}

/**
 * What a receiving process does for all its endpoints, every `housekeepingIntervalMs` while one
 * of them receives: refreshes its heartbeat and its instance queues, moves due delayed messages
 * into their queues, takes back messages claimed by receivers that died, deletes expired
 * instance queues. One per transport.
 */
export class Housekeeping {
  /** The receivers of every endpoint, whose queues are looked at for abandoned claims. */
  readonly receivers = new Set<Receiver>();
  /** Instance queues received from here: touched with the heartbeat, never expired. */
  readonly instanceQueues = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private lastBeat = 0;
  private lastExpiry = 0;
  private readonly reportedMissing = new Set<string>();

  constructor(
    private readonly store: FileStore,
    /** Names this transport's claims and heartbeat: the process id, and which transport in it. */
    private readonly owner: string,
    private readonly settings: ResolvedLearningOptions,
    private readonly logger: () => Logger | undefined,
  ) {}

  /** Whether the receiver that claimed a message has stopped or died, so its claims go back. */
  async isAbandoned(claimOwner: string, pid: number, now: number): Promise<boolean> {
    if (pid !== process.pid && !isProcessAlive(pid)) return true;
    const last = await this.store.lastHeartbeat(claimOwner);
    return last === undefined || now - last > this.settings.leaseMs;
  }

  async start(): Promise<void> {
    if (this.timer !== undefined) return;
    // The heartbeat exists before the first claim, so nobody mistakes our claims for abandoned ones.
    await this.store.heartbeat(this.owner);
    this.lastBeat = Date.now();
    this.timer = setInterval(() => this.tick(), this.settings.housekeepingIntervalMs);
    this.timer.unref();
    this.tick();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
    await this.store.removeOwner(this.owner);
  }

  private tick(): void {
    if (this.running !== undefined) return;
    this.running = this.once()
      .catch((error: unknown) => {
        this.logger()?.warn(`Learning transport housekeeping failed: ${(error as Error).message}`);
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  private async once(): Promise<void> {
    const { store, owner, settings } = this;
    const now = Date.now();
    if (now - this.lastBeat >= settings.leaseMs / 3) {
      this.lastBeat = now;
      await store.heartbeat(owner);
      for (const queue of this.instanceQueues) await store.touchInstanceQueue(queue);
    }
    await store.moveDue(now, (queue, file) => {
      if (this.reportedMissing.has(file)) return;
      this.reportedMissing.add(file);
      this.logger()?.warn(
        `A delayed message is due but its queue '${queue}' does not exist; it waits`,
        { file },
      );
    });
    const verdicts = new Map<string, Promise<boolean>>();
    const queues = new Set([...this.receivers].map((receiver) => receiver.queue));
    for (const queue of queues) {
      const reclaimed = await store.reclaim(queue, owner, (claimOwner, pid) => {
        let verdict = verdicts.get(claimOwner);
        if (verdict === undefined) {
          verdict = this.isAbandoned(claimOwner, pid, now);
          verdicts.set(claimOwner, verdict);
        }
        return verdict;
      });
      if (reclaimed > 0) {
        this.logger()?.warn(
          `Took back ${reclaimed} message(s) from a receiver that stopped without settling them`,
          { queue },
        );
        for (const receiver of this.receivers) if (receiver.queue === queue) receiver.wake();
      }
    }
    const expiryEvery = Math.min(60_000, settings.instanceQueueExpiryMs / 4);
    if (now - this.lastExpiry >= expiryEvery) {
      this.lastExpiry = now;
      const deleted = await store.expire(now, settings.instanceQueueExpiryMs, this.instanceQueues);
      if (deleted.length > 0) {
        this.logger()?.info('Deleted expired instance queues', { queues: deleted });
      }
    }
  }
}
