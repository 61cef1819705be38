import type { OutgoingRecord } from './kafka-client.js';

interface Pending {
  readonly records: readonly OutgoingRecord[];
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Coalesces concurrent dispatches into one produce request: those made in one turn of the event
 * loop go together, and while one request is in flight the next dispatches wait and then go
 * together. A lone dispatch waits only for the end of the current turn; one request at a time
 * also keeps records with one key in the order they were sent.
 */
export class ProducerBatcher {
  private readonly queue: Pending[] = [];
  private sending = false;
  private scheduled = false;

  constructor(
    private readonly produce: (records: readonly OutgoingRecord[]) => Promise<void>,
    private readonly maxRecords: number,
  ) {}

  send(records: readonly OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ records, resolve, reject });
      // Wait for the end of this turn of the event loop: dispatches made together go together.
      if (!this.scheduled && !this.sending) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  private pump(): void {
    if (this.sending || this.queue.length === 0) return;
    this.sending = true;
    const taken: Pending[] = [];
    let count = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0] as Pending;
      if (taken.length > 0 && count + next.records.length > this.maxRecords) break;
      taken.push(next);
      count += next.records.length;
      this.queue.shift();
    }
    void this.flush(taken).finally(() => {
      this.sending = false;
      this.pump();
    });
  }

  private async flush(taken: Pending[]): Promise<void> {
    try {
      await this.produce(taken.flatMap((pending) => pending.records));
      for (const pending of taken) pending.resolve();
    } catch (error) {
      if (taken.length === 1) {
        (taken[0] as Pending).reject(error);
        return;
      }
      // One dispatch's bad record must not fail the others it happened to travel with.
      for (const pending of taken) {
        try {
          await this.produce(pending.records);
          pending.resolve();
        } catch (own) {
          pending.reject(own);
        }
      }
    }
  }
}
