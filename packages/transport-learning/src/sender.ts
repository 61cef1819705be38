import { DestinationNotFoundError, type Logger, UsageError } from '@tidings/core';
import type { TransportOperation } from '@tidings/core/transport';
import { checkQueueFolderName, isQueueFolderName } from './file-names.js';
import type { FileStore, StagedMessage } from './file-store.js';

/**
 * The longest delay: 100 years. Due times are in file names as 14-digit milliseconds, which
 * sort in due order only up to the year 5138; a delay near `Number.MAX_SAFE_INTEGER` would never
 * be due at all.
 */
export const MAX_DELAY_MS = 100 * 365.25 * 24 * 60 * 60 * 1000;

/**
 * Writes outgoing operations as message files: every file of a dispatch staged first, then each
 * made visible by a rename, so a dispatch with a bad destination sends nothing. One per transport:
 * the queues it has seen and the stale subscriptions it has reported are shared by its endpoints.
 */
export class Sender {
  /** Queues seen to exist: one deleted since still fails at the rename. */
  private readonly knownQueues = new Set<string>();
  /** Subscribers found without their queue, reported once each (`<type>\0<queue>`). */
  private readonly reportedStale = new Set<string>();

  constructor(
    private readonly store: FileStore,
    private readonly logger: () => Logger | undefined,
  ) {}

  /** Stages every operation, then commits them in order; what is not committed is discarded. */
  async dispatch(operations: readonly TransportOperation[]): Promise<void> {
    const staged = await this.stage(operations);
    for (const [index, file] of staged.entries()) {
      try {
        await this.store.commit(file);
      } catch (error) {
        if (error instanceof DestinationNotFoundError) {
          this.knownQueues.delete(file.queue);
          // A subscriber's queue deleted since it was looked up: skipped, as in `liveSubscribers`.
          if (file.messageType !== undefined) {
            this.reportStale(file.messageType, file.queue, 'its queue folder does not exist');
            continue;
          }
        }
        await Promise.all(staged.slice(index + 1).map((rest) => this.store.discard(rest)));
        throw error;
      }
    }
  }

  private reportStale(messageType: string, queue: string, why: string): void {
    const key = `${messageType}\0${queue}`;
    if (this.reportedStale.has(key)) return;
    this.reportedStale.add(key);
    this.logger()?.warn(
      `Published '${messageType}' without a copy for subscriber '${queue}': ${why}. Delete .subscriptions/…/${queue} if that endpoint is gone for good`,
      { messageType, queue },
    );
  }

  /**
   * The subscribers of a message type that can take a copy. A subscription left behind by a
   * queue whose folder was deleted is skipped and reported, not failed: failing would fail every
   * publish of the type, and each retry would send the live subscribers their copies again.
   */
  private async liveSubscribers(messageType: string): Promise<string[]> {
    const live: string[] = [];
    for (const queue of await this.store.subscribers(messageType)) {
      if (!isQueueFolderName(queue)) {
        this.reportStale(messageType, queue, 'not a queue name');
      } else if (this.knownQueues.has(queue) || (await this.store.queueExists(queue))) {
        this.knownQueues.add(queue);
        live.push(queue);
      } else {
        this.reportStale(messageType, queue, 'its queue folder does not exist');
      }
    }
    return live;
  }

  /** Resolves every operation to staged files; nothing is visible until all are staged. */
  private async stage(operations: readonly TransportOperation[]): Promise<StagedMessage[]> {
    const planned: Array<{ operation: TransportOperation; queues: string[] }> = [];
    for (const operation of operations) {
      const destination = operation.destination;
      if (operation.delayMs !== undefined && operation.delayMs > MAX_DELAY_MS) {
        // Core refuses a longer delayMs at the call; a delayed retry's delay comes from config.
        throw new UsageError(
          `The learning transport delays at most ${MAX_DELAY_MS} ms (100 years); got ${operation.delayMs}.`,
        );
      }
      if (destination.kind === 'queue') {
        checkQueueFolderName(destination.queue);
        // Check every destination first, so a batch with one bad destination sends nothing.
        // Queues seen once are remembered: one deleted since still fails at the rename.
        if (!this.knownQueues.has(destination.queue)) {
          if (!(await this.store.queueExists(destination.queue))) {
            throw new DestinationNotFoundError(destination.queue);
          }
          this.knownQueues.add(destination.queue);
        }
        planned.push({ operation, queues: [destination.queue] });
      } else {
        planned.push({ operation, queues: await this.liveSubscribers(destination.messageType) });
      }
    }
    const staged: StagedMessage[] = [];
    try {
      for (const { operation, queues } of planned) {
        const dueAt =
          operation.delayMs !== undefined && operation.delayMs > 0
            ? Date.now() + operation.delayMs
            : undefined;
        const messageType =
          operation.destination.kind === 'publish' ? operation.destination.messageType : undefined;
        for (const queue of queues) {
          staged.push(await this.store.stage(operation.message, queue, dueAt, messageType));
        }
      }
    } catch (error) {
      await Promise.all(staged.map((file) => this.store.discard(file)));
      throw error;
    }
    return staged;
  }
}
