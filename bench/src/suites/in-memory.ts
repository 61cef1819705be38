import { EventEmitter } from 'node:events';
import {
  createEndpoint,
  createInMemoryTransport,
  defineMessage,
  type Endpoint,
  silentLogger,
} from '@tidings/core';
import { type BenchRow, type BenchSuite, rowFor, runConcurrent } from '../report.js';

const Order = defineMessage<{ id: number; sku: string }>('bench.Order');
const Ack = defineMessage<{ id: number }>('bench.Ack');
/** Requests use their own type, so telling them from one-way sends needs no extra header. */
const Quote = defineMessage<{ id: number; sku: string }>('bench.Quote');

const oneWayCount = 200_000;
const requestCount = 50_000;
const transportName = 'in-memory';

async function endpoints(): Promise<{ server: Endpoint; client: Endpoint; handled: () => number }> {
  const transport = createInMemoryTransport();
  let handled = 0;
  const server = createEndpoint({
    name: 'BenchServer',
    transport,
    logger: silentLogger,
    concurrency: 64,
  });
  server.handle(Order, () => {
    handled++;
  });
  server.handle(Quote, async (quote, ctx) => {
    handled++;
    await ctx.reply(Ack, { id: quote.id });
  });
  const client = createEndpoint({
    name: 'BenchClient',
    transport,
    logger: silentLogger,
    routes: { [Order.name]: 'BenchServer', [Quote.name]: 'BenchServer' },
    maxPendingRequests: 200_000,
  });
  await server.start();
  await client.start();
  return { server, client, handled: () => handled };
}

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

async function tidingsOneWay(): Promise<BenchRow> {
  const { server, client, handled } = await endpoints();
  const started = performance.now();
  const batch = 1000;
  for (let i = 0; i < oneWayCount; i += batch) {
    const sends: Promise<void>[] = [];
    for (let j = i; j < i + batch; j++) sends.push(client.send(Order, { id: j, sku: 'sku-1' }));
    await Promise.all(sends);
  }
  await waitFor(() => handled() >= oneWayCount);
  const elapsed = performance.now() - started;
  await client.stop();
  await server.stop();
  return row('one-way', 'tidings', oneWayCount, elapsed);
}

async function tidingsRequestReply(concurrency: number, total: number): Promise<BenchRow> {
  const { server, client } = await endpoints();
  const options = { expect: Ack } as const;
  const { elapsedMs, latenciesMs } = await runConcurrent(total, concurrency, async (id) => {
    await client.request(Quote, { id, sku: 'sku-1' }, options);
  });
  await client.stop();
  await server.stop();
  return row(`request/reply c=${concurrency}`, 'tidings', total, elapsedMs, latenciesMs);
}

/** The floor: JSON encode/decode over an EventEmitter, no bus. */
function rawBus() {
  const bus = new EventEmitter();
  bus.setMaxListeners(0);
  return bus;
}

async function rawOneWay(): Promise<BenchRow> {
  const bus = rawBus();
  let handled = 0;
  bus.on('order', (bytes: Buffer) => {
    JSON.parse(bytes.toString('utf8'));
    handled++;
  });
  const started = performance.now();
  for (let i = 0; i < oneWayCount; i++) {
    const bytes = Buffer.from(JSON.stringify({ id: i, sku: 'sku-1' }));
    setImmediate(() => bus.emit('order', bytes));
    if (i % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
  }
  await waitFor(() => handled >= oneWayCount);
  return row('one-way', 'raw EventEmitter + JSON', oneWayCount, performance.now() - started);
}

async function rawRequestReply(concurrency: number, total: number): Promise<BenchRow> {
  const bus = rawBus();
  const pending = new Map<string, () => void>();
  bus.on('request', (bytes: Buffer) => {
    const request = JSON.parse(bytes.toString('utf8')) as { id: number; cid: string };
    const reply = Buffer.from(JSON.stringify({ id: request.id, cid: request.cid }));
    setImmediate(() => bus.emit('reply', reply));
  });
  bus.on('reply', (bytes: Buffer) => {
    const reply = JSON.parse(bytes.toString('utf8')) as { cid: string };
    const done = pending.get(reply.cid);
    pending.delete(reply.cid);
    done?.();
  });
  const { elapsedMs, latenciesMs } = await runConcurrent(total, concurrency, (id) => {
    const cid = String(id);
    return new Promise<void>((resolve) => {
      pending.set(cid, resolve);
      const bytes = Buffer.from(JSON.stringify({ id, sku: 'sku-1', cid }));
      setImmediate(() => bus.emit('request', bytes));
    });
  });
  return row(
    `request/reply c=${concurrency}`,
    'raw EventEmitter + JSON',
    total,
    elapsedMs,
    latenciesMs,
  );
}

/** Heap per pending request (registry entry, timer, promise), and proof that the registry drains to zero. */
async function pendingMemory(): Promise<BenchRow> {
  const transport = createInMemoryTransport();
  const pendingCount = 100_000;
  const server = createEndpoint({
    name: 'Silent',
    transport,
    logger: silentLogger,
    concurrency: 64,
  });
  let received = 0;
  server.handle(Order, () => {
    received++; // never replies
  });
  const client = createEndpoint({
    name: 'Waiter',
    transport,
    logger: silentLogger,
    routes: { [Order.name]: 'Silent' },
    maxPendingRequests: pendingCount + 1,
    requestTimeoutMs: 600_000,
  });
  await server.start();
  await client.start();
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const requests: Promise<unknown>[] = [];
  for (let i = 0; i < pendingCount; i++) {
    requests.push(client.request(Order, { id: i, sku: 'sku-1' }, { expect: Ack }).catch(() => {}));
  }
  await waitFor(() => received === pendingCount);
  gc?.();
  // The caller's own promises are part of any request API; count them as the user's.
  const perRequest = (process.memoryUsage().heapUsed - before) / pendingCount;
  const pendingBefore = client.stats.pendingRequests;
  await client.stop(); // rejects every pending request
  await Promise.all(requests);
  await server.stop();
  return {
    transport: transportName,
    scenario: `${pendingCount} pending requests`,
    impl: 'tidings',
    messages: pendingCount,
    perSecond: Number.NaN,
    note: `${Math.round(perRequest)} B heap per pending request; registry ${pendingBefore} → ${client.stats.pendingRequests} after stop${gc ? '' : ' (run with --expose-gc for a precise figure)'}`,
  };
}

const row = rowFor(transportName);

export const inMemorySuite: BenchSuite = {
  name: transportName,
  async run() {
    return [
      await rawOneWay(),
      await tidingsOneWay(),
      await rawRequestReply(1, 10_000),
      await tidingsRequestReply(1, 10_000),
      await rawRequestReply(100, requestCount),
      await tidingsRequestReply(100, requestCount),
      await pendingMemory(),
    ];
  },
};
