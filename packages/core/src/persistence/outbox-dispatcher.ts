import type { Logger } from '../logging/logger.js';
import type { TransportEndpoint } from '../transport/transport.js';
import { errorMessage } from '../util.js';
import { dispatchStored } from './dispatch-stored.js';
import type { ResolvedOutboxOptions } from './outbox-options.js';
import type { EndpointStorage } from './persistence.js';

/** Records read per round of a sweep. */
const batchSize = 100;

/**
 * Sends what commits left undispatched (a crash between commit and dispatch, a refused dispatch,
 * an `endpoint.transaction` whose process died), and deletes dispatched records past retention.
 * At least once: a record dispatched here and by its own instance at once goes out twice, with
 * the same message ids, which the receiver's inbox drops.
 */
export class OutboxDispatcher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private lastCleanup = Date.now();

  constructor(
    private readonly storage: EndpointStorage,
    private readonly transport: TransportEndpoint,
    private readonly options: ResolvedOutboxOptions,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.schedule();
  }

  /** Waits for a sweep under way; no sweep starts after. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One sweep now (also what the timer runs): dispatches every record old enough. */
  async sweep(): Promise<number> {
    let dispatched = 0;
    for (;;) {
      if (this.stopped) return dispatched;
      const records = await this.storage.undispatched({
        olderThanMs: this.options.dispatchAfterMs,
        limit: batchSize,
      });
      for (const record of records) {
        if (this.stopped) return dispatched;
        if (record.operations.length > 0) {
          const dropped = await dispatchStored(this.transport, record.operations);
          if (dropped > 0) {
            this.logger.warn('Dropped a reply whose queue no longer exists', {
              record: record.key,
            });
          }
        }
        await this.storage.markDispatched(record.key);
        dispatched++;
      }
      if (records.length < batchSize) return dispatched;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.options.dispatchIntervalMs);
    // The endpoint's stop ends it; it alone must not keep a process alive.
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      const dispatched = await this.sweep();
      if (dispatched > 0) {
        this.logger.warn(
          `Dispatched ${dispatched} outbox record(s) that were committed but not sent (a stopped process or a refused dispatch)`,
        );
      }
      if (!this.stopped && Date.now() - this.lastCleanup >= this.options.cleanupIntervalMs) {
        this.lastCleanup = Date.now();
        const deleted = await this.storage.cleanup({ olderThanMs: this.options.retentionMs });
        if (deleted > 0) this.logger.debug(`Deleted ${deleted} dispatched outbox record(s)`);
      }
    } catch (error) {
      this.logger.error('The outbox dispatcher failed; it tries again at its next interval', {
        error: errorMessage(error),
      });
    }
  }
}
