import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  createEndpoint,
  createInMemoryPersistence,
  createInMemoryTransport,
  defineMessage,
  type HandlerContext,
  Headers,
  type InMemorySession,
  inboxKey,
  type Persistence,
  PersistenceError,
  returnToSourceQueue,
  silentLogger,
  storageSession,
  type Transport,
  UsageError,
} from '../src/index.ts';
import { putRaw, sleep, world } from './helpers.ts';

const PlaceOrder = defineMessage<{ orderId: string }>('t.PlaceOrder');
const OrderPlaced = defineMessage<{ orderId: string }>('t.OrderPlaced');
const ShipOrder = defineMessage<{ orderId: string }>('t.ShipOrder');

const session = (ctx: object) => storageSession<InMemorySession>(ctx);

/** A transport whose dispatches of ShipOrder fail while `failing` (asked for each) says so. */
function flakyTransport(inner: Transport, failing: () => boolean): Transport {
  return {
    ...inner,
    spiVersion: inner.spiVersion,
    name: inner.name,
    capabilities: inner.capabilities,
    async openEndpoint(topology, context) {
      const endpoint = await inner.openEndpoint(topology, context);
      return {
        ...endpoint,
        dispatch: (operations) =>
          operations.some(
            (operation) => operation.message.headers['tidings.message-type'] === ShipOrder.name,
          ) && failing()
            ? Promise.reject(new Error('broker said no'))
            : endpoint.dispatch(operations),
        startReceiving: (settings) => endpoint.startReceiving(settings),
        stopReceiving: () => endpoint.stopReceiving(),
        subscribe: (messageType) => endpoint.subscribe(messageType),
        unsubscribe: (messageType) => endpoint.unsubscribe(messageType),
        close: () => endpoint.close(),
      };
    },
  };
}

describe('outbox and inbox (in-memory persistence)', () => {
  const w = world();
  afterEach(() => w.stopAll());

  async function orderService(
    options: { transport?: Transport; onHandle?: (ctx: HandlerContext) => Promise<void> } = {},
  ) {
    const persistence = createInMemoryPersistence();
    const runs: string[] = [];
    const sales = w.endpoint({
      name: `Sales-${Math.random().toString(36).slice(2, 8)}`,
      persistence,
      routes: { [ShipOrder.name]: 'Shipping' },
      recoverability: { immediateRetries: 2, delayedRetries: { count: 0, delayMs: 1 } },
      ...(options.transport ? { transport: options.transport } : {}),
    });
    sales.handle(PlaceOrder, async (order, ctx) => {
      runs.push(order.orderId);
      session(ctx).set(
        `order:${order.orderId}`,
        ((session(ctx).get(`order:${order.orderId}`) as number | undefined) ?? 0) + 1,
      );
      await options.onHandle?.(ctx);
      await ctx.send(ShipOrder, order);
    });
    const shipped: string[] = [];
    const shipping = w.endpoint({
      name: 'Shipping',
      ...(options.transport ? { transport: options.transport } : {}),
    });
    shipping.handle(ShipOrder, (order, ctx) => {
      shipped.push(`${order.orderId}/${ctx.messageId}`);
    });
    await shipping.start();
    await sales.start();
    const client = w.endpoint({
      name: `Client-${Math.random().toString(36).slice(2, 8)}`,
      routes: { [PlaceOrder.name]: sales.name },
      ...(options.transport ? { transport: options.transport } : {}),
    });
    await client.start();
    return { persistence, sales, client, runs, shipped };
  }

  it('commits the handler writes with the record and sends after commit', async () => {
    const { persistence, sales, client, shipped } = await orderService();
    await client.send(PlaceOrder, { orderId: 'a' }, { messageId: 'm-a' });
    await expect.poll(() => shipped.length).toBe(1);
    expect(persistence.data.get('order:a')).toBe(1);
    await expect
      .poll(() => persistence.records(sales.name))
      .toEqual([expect.objectContaining({ key: 'm-a', dispatched: true })]);
  });

  it('acknowledges a message id already handled without running handlers again', async () => {
    const { persistence, client, runs, shipped, sales } = await orderService();
    await client.send(PlaceOrder, { orderId: 'a' }, { messageId: 'dup' });
    await expect.poll(() => shipped.length).toBe(1);
    await client.send(PlaceOrder, { orderId: 'a' }, { messageId: 'dup' });
    await client.send(PlaceOrder, { orderId: 'b' }, { messageId: 'other' });
    await expect.poll(() => shipped.length).toBe(2);
    await expect.poll(() => sales.stats.inFlight).toBe(0);
    expect(runs).toEqual(['a', 'b']);
    expect(persistence.data.get('order:a')).toBe(1);
  });

  it('runs the handlers once for concurrent duplicates of one message', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { persistence, client, runs, shipped, sales } = await orderService({
      onHandle: () => gate,
    });
    await client.send(PlaceOrder, { orderId: 'c' }, { messageId: 'twice' });
    await client.send(PlaceOrder, { orderId: 'c' }, { messageId: 'twice' });
    // Both are in flight: the second waits on the first's claim.
    await expect.poll(() => sales.stats.inFlight).toBe(2);
    release();
    await expect.poll(() => sales.stats.inFlight).toBe(0);
    expect(runs).toEqual(['c']);
    // In one process the copy leaves the dispatch to the attempt that committed: sent once.
    expect(shipped).toHaveLength(1);
    expect(persistence.data.get('order:c')).toBe(1);
  });

  it('rolls back a failed attempt: nothing written, nothing sent; the retry commits once', async () => {
    let failures = 1;
    const { persistence, client, runs, shipped } = await orderService({
      onHandle: async () => {
        if (failures-- > 0) throw new Error('transient');
      },
    });
    await client.send(PlaceOrder, { orderId: 'd' });
    await expect.poll(() => shipped.length).toBe(1);
    expect(runs).toEqual(['d', 'd']);
    expect(persistence.data.get('order:d')).toBe(1);
  });

  it('a delayed retry is handled, not taken for a duplicate: the failed attempts left no record', async () => {
    const persistence = createInMemoryPersistence();
    let failures = 2;
    const sales = w.endpoint({
      name: 'Delayed',
      persistence,
      recoverability: { immediateRetries: 0, delayedRetries: { count: 3, delayMs: 10 } },
    });
    sales.handle(PlaceOrder, async (order, ctx) => {
      session(ctx).set(`delayed:${order.orderId}`, 1);
      if (failures-- > 0) throw new Error('not yet');
    });
    await sales.start();
    await sales.send(PlaceOrder, { orderId: 'k' }, { to: 'Delayed', messageId: 'late' });
    await expect.poll(() => sales.stats.handled).toBe(1);
    expect(sales.stats.delayedRetries).toBe(2);
    expect(persistence.data.get('delayed:k')).toBe(1);
    expect(persistence.records('Delayed')).toEqual([
      expect.objectContaining({ key: 'late', dispatched: true }),
    ]);
  });

  it('leaves no record for a message moved to the error queue, so its return is handled', async () => {
    let failing = true;
    const { persistence, client, shipped, sales } = await orderService({
      onHandle: async () => {
        if (failing) throw new Error('permanent');
      },
    });
    await client.send(PlaceOrder, { orderId: 'e' }, { messageId: 'poison' });
    await expect.poll(() => w.transport.queueDepth('error')).toBe(1);
    expect(persistence.records(sales.name)).toEqual([]);
    expect(persistence.data.get('order:e')).toBeUndefined();
    failing = false;
    await returnToSourceQueue({ transport: w.transport, logger: silentLogger, idleMs: 200 });
    await expect.poll(() => shipped.length).toBe(1);
    expect(persistence.data.get('order:e')).toBe(1);
  });

  it('a dispatch refused after commit is retried from the record, without the handlers', async () => {
    // The dispatch after commit and the first retry's are refused; the second retry's goes.
    let refusals = 2;
    const transport = flakyTransport(createInMemoryTransport(), () => refusals-- > 0);
    const { persistence, client, runs, shipped, sales } = await orderService({ transport });
    await client.send(PlaceOrder, { orderId: 'f' }, { messageId: 'crash' });
    await expect.poll(() => shipped.length).toBe(1);
    expect(runs).toEqual(['f']);
    expect(sales.stats.immediateRetries).toBe(2);
    expect(persistence.data.get('order:f')).toBe(1);
    await expect.poll(() => persistence.records(sales.name)[0]?.dispatched).toBe(true);
  });

  it('a dispatch refused for good: the message goes on to the error queue, the dispatcher sends the record later', async () => {
    let refuse = true;
    const transport = flakyTransport(createInMemoryTransport(), () => refuse);
    const persistence = createInMemoryPersistence();
    const sales = w.endpoint({
      name: 'Sales',
      transport,
      persistence,
      routes: { [ShipOrder.name]: 'Shipping' },
      recoverability: { immediateRetries: 1, delayedRetries: { count: 0, delayMs: 1 } },
      outbox: { dispatchIntervalMs: 20, dispatchAfterMs: 0 },
    });
    const runs: string[] = [];
    sales.handle(PlaceOrder, async (order, ctx) => {
      runs.push(order.orderId);
      await ctx.send(ShipOrder, order);
    });
    const shipped: string[] = [];
    const shipping = w.endpoint({ name: 'Shipping', transport });
    shipping.handle(ShipOrder, (order) => void shipped.push(order.orderId));
    await shipping.start();
    await sales.start();
    await sales.send(PlaceOrder, { orderId: 'g' }, { to: 'Sales', messageId: 'stuck' });
    await expect.poll(() => sales.stats.movedToErrorQueue).toBe(1);
    expect(runs).toEqual(['g']);
    expect(persistence.records('Sales')).toEqual([
      expect.objectContaining({ key: 'stuck', dispatched: false }),
    ]);
    refuse = false;
    await expect.poll(() => shipped).toEqual(['g']);
    await expect.poll(() => persistence.records('Sales')[0]?.dispatched).toBe(true);
  });

  it('a commit that failed but had committed: the retry dispatches from the record, no rerun', async () => {
    const inner = createInMemoryPersistence();
    let commits = 0;
    // The connection drops after the server committed: the client sees an error.
    const persistence: Persistence<InMemorySession> = {
      spiVersion: inner.spiVersion,
      name: 'commit-then-fail',
      async open(context) {
        const storage = await inner.open(context);
        return Object.assign(Object.create(storage) as typeof storage, {
          async begin() {
            const transaction = await storage.begin();
            return Object.assign(Object.create(transaction) as typeof transaction, {
              async commit() {
                await transaction.commit();
                if (commits++ === 0) throw new Error('connection lost during COMMIT');
              },
            });
          },
        });
      },
    };
    const runs: string[] = [];
    const shipped: string[] = [];
    const sales = w.endpoint({
      name: 'Sales',
      persistence,
      routes: { [ShipOrder.name]: 'Shipping' },
      recoverability: { immediateRetries: 2, delayedRetries: { count: 0, delayMs: 1 } },
    });
    sales.handle(PlaceOrder, async (order, ctx) => {
      runs.push(order.orderId);
      await ctx.send(ShipOrder, order);
    });
    const shipping = w.endpoint({ name: 'Shipping' });
    shipping.handle(ShipOrder, (order) => void shipped.push(order.orderId));
    await shipping.start();
    await sales.start();
    await sales.send(PlaceOrder, { orderId: 'm' }, { to: 'Sales' });
    await expect.poll(() => shipped).toEqual(['m']);
    expect(runs).toEqual(['m']);
    expect(sales.stats.immediateRetries).toBe(1);
    await expect.poll(() => inner.records('Sales')[0]?.dispatched).toBe(true);
  });

  it('endpoint.transaction commits the caller writes with its messages, or neither', async () => {
    const persistence = createInMemoryPersistence();
    const web = w.endpoint({ name: 'Web', persistence, routes: { [ShipOrder.name]: 'Shipping' } });
    const shipped: string[] = [];
    const shipping = w.endpoint({ name: 'Shipping' });
    shipping.handle(ShipOrder, (order) => void shipped.push(order.orderId));
    await shipping.start();
    await web.start();
    const result = await web.transaction(async (scope) => {
      session(scope).set('order:g', 1);
      await scope.send(ShipOrder, { orderId: 'g' });
      await scope.publish(OrderPlaced, { orderId: 'g' });
      return 'done';
    });
    expect(result).toBe('done');
    await expect.poll(() => shipped).toEqual(['g']);
    expect(persistence.data.get('order:g')).toBe(1);
    await expect(
      web.transaction(async (scope) => {
        session(scope).set('order:h', 1);
        await scope.send(ShipOrder, { orderId: 'h' });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    await sleep(50);
    expect(shipped).toEqual(['g']);
    expect(persistence.data.has('order:h')).toBe(false);
  });

  it('the background dispatcher sends what a transaction committed but could not dispatch', async () => {
    let refuse = true;
    const transport = flakyTransport(createInMemoryTransport(), () => refuse);
    const persistence = createInMemoryPersistence();
    const web = w.endpoint({
      name: 'Web',
      transport,
      persistence,
      routes: { [ShipOrder.name]: 'Shipping' },
      outbox: { dispatchIntervalMs: 20, dispatchAfterMs: 0 },
    });
    const shipped: string[] = [];
    const shipping = w.endpoint({ name: 'Shipping', transport });
    shipping.handle(ShipOrder, (order) => void shipped.push(order.orderId));
    await shipping.start();
    await web.start();
    await web.transaction((scope) => scope.send(ShipOrder, { orderId: 'i' }));
    expect(persistence.records('Web')).toEqual([expect.objectContaining({ dispatched: false })]);
    refuse = false;
    await expect.poll(() => shipped).toEqual(['i']);
    await expect.poll(() => persistence.records('Web')[0]?.dispatched).toBe(true);
  });

  it('deletes dispatched records past retention', async () => {
    const persistence = createInMemoryPersistence();
    const sales = w.endpoint({
      name: 'Sales',
      persistence,
      outbox: { retentionMs: 1, cleanupIntervalMs: 1, dispatchIntervalMs: 20 },
    });
    sales.handle(PlaceOrder, () => {});
    await sales.start();
    await sales.send(PlaceOrder, { orderId: 'j' }, { to: 'Sales' });
    await expect.poll(() => sales.stats.handled).toBe(1);
    await expect.poll(() => persistence.records('Sales')).toEqual([]);
  });

  it('refuses transaction() without persistence, and storageSession outside one', async () => {
    const plain = w.endpoint({ name: 'Plain' });
    await plain.start();
    await expect(plain.transaction(() => 1)).rejects.toBeInstanceOf(ConfigurationError);
    expect(() => storageSession({})).toThrow(UsageError);
    expect(() =>
      createEndpoint({
        name: 'X',
        transport: createInMemoryTransport(),
        persistence: { spiVersion: 2 as 1, name: 'future', open: async () => ({}) as never },
      }),
    ).toThrow(/SPI version 2/);
    expect(new PersistenceError('x').code).toBe('TIDINGS_PERSISTENCE');
  });
});

describe('replies under the outbox', () => {
  const w = world();
  afterEach(() => w.stopAll());
  const Ask = defineMessage<{ n: number }>('t.OutboxAsk');
  const Answer = defineMessage<{ n: number }>('t.OutboxAnswer');

  it('a handler that only replies: the reply is stored with the record and reaches the requester', async () => {
    const persistence = createInMemoryPersistence();
    const server = w.endpoint({ name: 'ReplyingServer', persistence });
    server.handle(Ask, async (p, ctx) => {
      await ctx.reply(Answer, { n: p.n * 2 });
    });
    await server.start();
    const client = w.endpoint({ name: 'Asker', routes: { [Ask.name]: 'ReplyingServer' } });
    await client.start();
    expect(await client.request(Ask, { n: 21 }, { expect: Answer, timeoutMs: 5_000 })).toEqual({
      n: 42,
    });
  });

  it('a reply whose queue is gone is dropped and counted; the message is handled once, its send goes', async () => {
    const persistence = createInMemoryPersistence();
    const server = w.endpoint({
      name: 'LateOutboxServer',
      persistence,
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
    });
    let runs = 0;
    server.handle(Ask, async (p, ctx) => {
      runs++;
      await ctx.reply(Answer, { n: p.n });
      await ctx.send(OrderPlaced, { orderId: 'o' }, { to: 'LateOutboxAudit' });
    });
    const audit = w.endpoint({ name: 'LateOutboxAudit' });
    const audited: string[] = [];
    audit.handle(OrderPlaced, async (p) => void audited.push(p.orderId));
    await audit.start();
    await server.start();
    // A request whose requester is gone: its instance queue no longer exists.
    await putRaw(w.transport, 'LateOutboxServer', 'ask-gone', {
      [Headers.MessageType]: Ask.name,
      [Headers.ReplyTo]: 'GoneClient.gone',
    });
    await expect.poll(() => server.stats.handled + server.stats.movedToErrorQueue).toBe(1);
    expect(runs).toBe(1);
    expect(server.stats.movedToErrorQueue).toBe(0);
    expect(server.stats.undeliverableReplies).toBe(1);
    await expect.poll(() => audited).toEqual(['o']);
  });
});

describe('inboxKey', () => {
  it('keeps readable ids and hashes long, binary, sha256:- and tx:-prefixed ones', () => {
    expect(inboxKey('3f2a-b1')).toBe('3f2a-b1');
    const long = inboxKey('x'.repeat(10_000));
    expect(long).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(inboxKey('a\u0000b')).toMatch(/^sha256:/);
    expect(inboxKey('é')).toMatch(/^sha256:/);
    const hashed = inboxKey('a\u0000b');
    expect(inboxKey(hashed)).not.toBe(hashed);
    expect(inboxKey('tx:6f1c')).toMatch(/^sha256:/);
  });
});

describe('stopping with a transaction under way', () => {
  const w = world();
  afterEach(() => w.stopAll());

  it('stop waits for endpoint.transaction to commit and dispatch before the transport closes', async () => {
    const persistence = createInMemoryPersistence();
    // A connection that refuses to dispatch once closed, as a broker connection would.
    let closed = false;
    const inner = w.transport;
    const transport: Transport = {
      spiVersion: inner.spiVersion,
      name: inner.name,
      capabilities: inner.capabilities,
      async openEndpoint(topology, context) {
        const endpoint = await inner.openEndpoint(topology, context);
        return Object.assign(Object.create(endpoint) as typeof endpoint, {
          dispatch: (operations: Parameters<typeof endpoint.dispatch>[0]) =>
            closed ? Promise.reject(new Error('closed')) : endpoint.dispatch(operations),
          close: async () => {
            closed = true;
            await endpoint.close();
          },
        });
      },
    };
    const web = w.endpoint({
      name: 'Web',
      transport,
      persistence,
      routes: { [ShipOrder.name]: 'Shipping' },
    });
    const shipped: string[] = [];
    const shipping = w.endpoint({ name: 'Shipping' });
    shipping.handle(ShipOrder, (order) => void shipped.push(order.orderId));
    await shipping.start();
    await web.start();
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const done = web.transaction(async (scope) => {
      entered();
      await sleep(50);
      await scope.send(ShipOrder, { orderId: 'late' });
    });
    await inside;
    await web.stop();
    await done;
    expect(persistence.records('Web')).toEqual([expect.objectContaining({ dispatched: true })]);
    await expect.poll(() => shipped).toEqual(['late']);
  });
});
