import type { OutgoingRecord } from './kafka-client.js';

/**
 * A v2 record's own fields at most: length, attributes, timestamp and offset deltas, key and value
 * lengths, header count.
 */
const RECORD_OVERHEAD_BYTES = 36;
/** A record header's two length fields at most. */
const HEADER_OVERHEAD_BYTES = 10;

/** About what a record adds to a produce request once encoded (no compression). */
function estimateRecordBytes(record: OutgoingRecord): number {
  let size = RECORD_OVERHEAD_BYTES + Buffer.byteLength(record.key) + record.value.byteLength;
  const { headers } = record;
  for (const name in headers) {
    size +=
      HEADER_OVERHEAD_BYTES + Buffer.byteLength(name) + Buffer.byteLength(headers[name] as string);
  }
  return size;
}

export interface ProduceLimits {
  /** Most records in one produce request. */
  readonly maxRecords: number;
  /**
   * Most bytes (estimated) in one produce request. The broker applies `max.message.bytes` to each
   * partition's batch in it, and a request it refuses may already have been written elsewhere.
   */
  readonly maxBytes: number;
}

interface Pending {
  readonly records: readonly OutgoingRecord[];
  /** Estimated bytes of the records. */
  readonly bytes: number;
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Coalesces concurrent dispatches into one produce request: those made in one turn of the event
 * loop go together, and while one request is in flight the next dispatches wait and then go
 * together, as many whole dispatches as fit in the limits. A lone dispatch waits only for the end
 * of the current turn; one request at a time also keeps records with one key in the order they
 * were sent.
 */
export class ProducerBatcher {
  private readonly queue: Pending[] = [];
  private sending = false;
  private scheduled = false;

  /**
   * @param isRetryable True for a failure that would fail any records sent now (the cluster is
   * unreachable): every dispatch of the request fails with it, none is tried again alone.
   */
  constructor(
    private readonly produce: (records: readonly OutgoingRecord[]) => Promise<void>,
    private readonly limits: ProduceLimits,
    private readonly isRetryable: (error: unknown) => boolean,
  ) {}

  send(records: readonly OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    let bytes = 0;
    for (const record of records) bytes += estimateRecordBytes(record);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ records, bytes, resolve, reject });
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
    const { maxRecords, maxBytes } = this.limits;
    const taken = [this.queue.shift() as Pending];
    let count = (taken[0] as Pending).records.length;
    let bytes = (taken[0] as Pending).bytes;
    while (this.queue.length > 0) {
      const next = this.queue[0] as Pending;
      if (count + next.records.length > maxRecords || bytes + next.bytes > maxBytes) break;
      taken.push(next);
      count += next.records.length;
      bytes += next.bytes;
      this.queue.shift();
    }
    void this.flush(taken).finally(() => {
      this.sending = false;
      this.pump();
    });
  }

  private async flush(taken: Pending[]): Promise<void> {
    if (taken.length > 1) {
      try {
        await this.produce(taken.flatMap((pending) => pending.records));
        for (const pending of taken) pending.resolve();
        return;
      } catch (error) {
        // The cluster is away (kafkajs has retried already): sending each alone would only repeat
        // the wait, dispatch after dispatch, while new ones queue behind.
        if (this.isRetryable(error)) {
          for (const pending of taken) pending.reject(error);
          return;
        }
        // Else it may be down to one dispatch's records: it must not fail the others.
      }
    }
    for (const [i, pending] of taken.entries()) {
      try {
        await this.produceInParts(pending);
        pending.resolve();
      } catch (error) {
        pending.reject(error);
        if (this.isRetryable(error)) {
          for (const rest of taken.slice(i + 1)) rest.reject(error);
          return;
        }
      }
    }
  }

  /**
   * One dispatch; beyond the limits, in consecutive parts one after another, so records with one
   * key keep their order. A record larger than `maxBytes` goes alone, and the broker decides.
   */
  private async produceInParts(pending: Pending): Promise<void> {
    const { records } = pending;
    const { maxRecords, maxBytes } = this.limits;
    if (records.length <= maxRecords && pending.bytes <= maxBytes) {
      await this.produce(records);
      return;
    }
    let start = 0;
    while (start < records.length) {
      let end = start;
      let bytes = 0;
      while (end < records.length && end - start < maxRecords) {
        const next = estimateRecordBytes(records[end] as OutgoingRecord);
        if (end > start && bytes + next > maxBytes) break;
        bytes += next;
        end++;
      }
      await this.produce(records.slice(start, end));
      start = end;
    }
  }
}
