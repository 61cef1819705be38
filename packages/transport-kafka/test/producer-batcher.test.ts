import { describe, expect, it } from 'vitest';
import type { OutgoingRecord } from '../src/kafka-client.ts';
import { kafkaTransportDefaults } from '../src/options.ts';
import { ProducerBatcher } from '../src/producer-batcher.ts';

const record = (topic: string, key: string, valueBytes: number): OutgoingRecord => ({
  topic,
  key,
  keyed: true,
  value: new Uint8Array(valueBytes),
  headers: { 'tidings.headers': `{"message-id":"${key}"}` },
});

/** Key, value and header bytes: what the broker counts against max.message.bytes, bar framing. */
const payloadBytes = (records: readonly OutgoingRecord[]) =>
  records.reduce(
    (sum, r) =>
      sum +
      Buffer.byteLength(r.key) +
      r.value.byteLength +
      Object.entries(r.headers).reduce(
        (h, [name, value]) => h + Buffer.byteLength(name) + Buffer.byteLength(value),
        0,
      ),
    0,
  );

const { maxMessageSizeBytes, maxBatchRecords } = kafkaTransportDefaults;

/** A batcher in front of a produce function that records each request it is given. */
function batcherWith(produce: (records: readonly OutgoingRecord[]) => void) {
  const requests: OutgoingRecord[][] = [];
  const batcher = new ProducerBatcher(
    async (records) => {
      requests.push([...records]);
      produce(records);
    },
    { maxRecords: maxBatchRecords, maxBytes: maxMessageSizeBytes },
  );
  return { batcher, requests };
}

describe('ProducerBatcher', () => {
  it('keeps each produce request within maxMessageSizeBytes: concurrent large dispatches go in several, each record once, in order', async () => {
    const { batcher, requests } = batcherWith(() => {});
    // 30 dispatches of ~100 KB, made together: 3 MB, three times what the broker takes at once.
    const dispatches = Array.from({ length: 30 }, (_, n) => [
      record(`t${n % 3}`, `k${n}`, 100_000),
    ]);
    await Promise.all(dispatches.map((records) => batcher.send(records)));

    expect(requests.length).toBeGreaterThan(1);
    for (const request of requests)
      expect(payloadBytes(request)).toBeLessThanOrEqual(maxMessageSizeBytes);
    // Whole dispatches, in the order they were made, none twice.
    expect(requests.flat().map((r) => r.key)).toEqual(dispatches.flat().map((r) => r.key));
  });

  it('splits one dispatch larger than maxMessageSizeBytes into produce calls in order, one after another', async () => {
    let inFlight = 0;
    let overlapped = false;
    const requests: OutgoingRecord[][] = [];
    const batcher = new ProducerBatcher(
      async (records) => {
        overlapped ||= inFlight > 0;
        inFlight++;
        requests.push([...records]);
        await new Promise((resolve) => setImmediate(resolve));
        inFlight--;
      },
      { maxRecords: maxBatchRecords, maxBytes: maxMessageSizeBytes },
    );
    // One ordering key: each record passes the per-message check, together they do not fit.
    const records = Array.from({ length: 7 }, (_, n) => ({
      ...record('orders', 'customer-7', 400_000),
      headers: { n: String(n) },
    }));
    await batcher.send(records);

    expect(requests.length).toBeGreaterThanOrEqual(4);
    for (const request of requests)
      expect(payloadBytes(request)).toBeLessThanOrEqual(maxMessageSizeBytes);
    expect(requests.flat().map((r) => r.headers.n)).toEqual(records.map((r) => r.headers.n));
    expect(overlapped).toBe(false);
  });

  it('sends a record larger than the budget on its own, and the broker decides', async () => {
    const { batcher, requests } = batcherWith(() => {});
    const big = record('t', 'big', maxMessageSizeBytes + 1);
    await Promise.all([
      batcher.send([record('t', 'a', 10)]),
      batcher.send([big]),
      batcher.send([record('t', 'b', 10)]),
    ]);
    expect(requests.map((request) => request.map((r) => r.key))).toEqual([['a'], ['big'], ['b']]);
  });
});
