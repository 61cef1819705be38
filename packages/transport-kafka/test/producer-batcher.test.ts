import {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
} from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { isRetryableProduceFailure } from '../src/errors.ts';
import type { OutgoingRecord } from '../src/kafka-client.ts';
import { kafkaTransportDefaults } from '../src/options.ts';
import { ProducerBatcher } from '../src/producer-batcher.ts';

// kafkajs's typings declare fewer constructor arguments than its classes take.
type Native = new (...args: unknown[]) => Error;

/** What kafkajs's producer throws for a broker error it does not retry, e.g. MESSAGE_TOO_LARGE. */
const brokerRefused = (type: string, retriable: boolean) => {
  const protocol = new (KafkaJSProtocolError as unknown as Native)({
    message: `broker said ${type}`,
    type,
    code: 1,
    retriable,
  });
  return retriable
    ? new KafkaJSNumberOfRetriesExceeded(protocol, { retryCount: 8, retryTime: 5_000 })
    : new (KafkaJSNonRetriableError as unknown as Native)(protocol, { cause: protocol });
};

/** What it throws once its retries against an unreachable cluster are used up. */
const clusterDown = () =>
  new KafkaJSNumberOfRetriesExceeded(
    new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092'),
    { retryCount: 8, retryTime: 5_000 },
  );

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
    isRetryableProduceFailure,
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
      isRetryableProduceFailure,
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

  it('a retryable failure (cluster unreachable) rejects every dispatch of the request at once, without sending them one by one', async () => {
    const down = clusterDown();
    const { batcher, requests } = batcherWith(() => {
      throw down;
    });
    const sends = Array.from({ length: 5 }, (_, n) => batcher.send([record('t', `k${n}`, 10)]));
    const outcomes = await Promise.allSettled(sends);

    expect(outcomes.map((o) => (o.status === 'rejected' ? o.reason : o.status))).toEqual(
      Array.from({ length: 5 }, () => down),
    );
    expect(requests).toHaveLength(1);
  });

  it('a failure down to one dispatch (too large, unknown topic) fails that dispatch alone: the others are sent one by one', async () => {
    const tooLarge = brokerRefused('MESSAGE_TOO_LARGE', false);
    const unknownTopic = brokerRefused('UNKNOWN_TOPIC_OR_PARTITION', true);
    const { batcher, requests } = batcherWith((records) => {
      if (records.some((r) => r.topic === 'deleted')) throw unknownTopic;
      if (records.some((r) => r.key === 'huge')) throw tooLarge;
    });
    const outcomes = await Promise.allSettled([
      batcher.send([record('t', 'a', 10)]),
      batcher.send([record('t', 'huge', 10)]),
      batcher.send([record('deleted', 'b', 10)]),
      batcher.send([record('t', 'c', 10)]),
    ]);

    expect(outcomes.map((o) => (o.status === 'rejected' ? o.reason : o.status))).toEqual([
      'fulfilled',
      tooLarge,
      unknownTopic,
      'fulfilled',
    ]);
    expect(requests.map((request) => request.map((r) => r.key))).toEqual([
      ['a', 'huge', 'b', 'c'],
      ['a'],
      ['huge'],
      ['b'],
      ['c'],
    ]);
  });

  it('when the cluster goes away while dispatches are sent one by one, the rest fail with it at once', async () => {
    const tooLarge = brokerRefused('MESSAGE_TOO_LARGE', false);
    const down = clusterDown();
    let calls = 0;
    const { batcher, requests } = batcherWith(() => {
      calls++;
      // The combined request fails for one dispatch's record; then the cluster is gone.
      throw calls === 1 ? tooLarge : down;
    });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 4 }, (_, n) => batcher.send([record('t', `k${n}`, 10)])),
    );

    expect(outcomes.map((o) => (o.status === 'rejected' ? o.reason : o.status))).toEqual([
      down,
      down,
      down,
      down,
    ]);
    expect(requests).toHaveLength(2);
  });
});
