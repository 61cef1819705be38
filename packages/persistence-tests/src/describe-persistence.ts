import { randomUUID } from 'node:crypto';
import {
  createEndpoint,
  createInMemoryTransport,
  defineMessage,
  type Endpoint,
  type EndpointStorage,
  inboxKey,
  type Persistence,
  silentLogger,
  storageSession,
  type Transport,
} from '@tidings/core';
import type { TransportOperation } from '@tidings/core/transport';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { describeDurableRequests } from './describe-durable-requests.js';

/** A persistence under test, with a way to make and count a user's own write in its session. */
export interface PersistenceUnderTest<S = unknown> {
  readonly persistence: Persistence<S>;
  /** Writes a row keyed `key` through the session, as a handler's own SQL would. */
  write(session: S, key: string): Promise<void>;
  /** Committed rows keyed `key`. */
  count(key: string): Promise<number>;
  /** Drops what the suite created (a schema, tables). */
  dispose?(): Promise<void>;
}

export interface DescribePersistenceOptions<S> {
  readonly name: string;
  /** Called once for the suite: a persistence whose tables exist (install them here). */
  makePersistence(): Promise<PersistenceUnderTest<S>>;
}

const PlaceOrder = defineMessage<{ orderId: string }>('conformance.PlaceOrder');
const ShipOrder = defineMessage<{ orderId: string }>('conformance.ShipOrder');

const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

function operation(bytes: Uint8Array, delayMs?: number): TransportOperation {
  // A plain Uint8Array, as a store hands bodies back: a Buffer would not compare equal.
  const body = new Uint8Array(bytes);
  const message = {
    messageId: randomUUID(),
    headers: { 'tidings.message-type': 'x', a: 'é\u0001' },
    body,
  };
  return delayMs === undefined
    ? { message, destination: { kind: 'queue', queue: 'Shipping' } }
    : { message, destination: { kind: 'publish', messageType: 'x.Event' }, delayMs };
}

/** Claims `key` (it must be new), stores `operations` and commits: one handled message. */
async function commitRecord(
  storage: EndpointStorage,
  key: string,
  operations: readonly TransportOperation[],
): Promise<void> {
  const tx = await storage.begin();
  expect(await tx.claim(key)).toEqual({ kind: 'claimed' });
  await tx.store(key, operations);
  await tx.commit();
}

/** A transport whose dispatches of `ShipOrder` fail while `refusing()` (asked for each) says so. */
function refusingTransport(inner: Transport, refusing: () => boolean): Transport {
  return {
    spiVersion: inner.spiVersion,
    name: inner.name,
    capabilities: inner.capabilities,
    async openEndpoint(topology, context) {
      const endpoint = await inner.openEndpoint(topology, context);
      const dispatch = endpoint.dispatch.bind(endpoint);
      return Object.assign(Object.create(endpoint) as typeof endpoint, {
        dispatch: (operations: readonly TransportOperation[]) =>
          operations.some((o) => o.message.headers['tidings.message-type'] === ShipOrder.name) &&
          refusing()
            ? Promise.reject(new Error('refused'))
            : dispatch(operations),
      });
    },
  };
}

/**
 * The conformance suite every persistence runs: the storage SPI (claims, concurrent duplicates,
 * records, dispatch marks, cleanup) and, through a real endpoint on the in-memory transport, the
 * guarantees users rely on (a message's effect once, sends after commit, a crash between commit
 * and dispatch, `endpoint.transaction`).
 */
export function describePersistence<S>(options: DescribePersistenceOptions<S>): void {
  describe(`persistence conformance: ${options.name}`, () => {
    let under: PersistenceUnderTest<S>;
    const endpoints: Endpoint[] = [];

    beforeAll(async () => {
      under = await options.makePersistence();
    });
    afterEach(async () => {
      await Promise.all(endpoints.splice(0).map((endpoint) => endpoint.stop()));
    });
    afterAll(async () => {
      await under?.dispose?.();
    });

    const open = (endpointName = unique('E')) =>
      under.persistence.open({ endpointName, logger: silentLogger });

    describe('storage', () => {
      it('claims a new key once; a committed key is a duplicate with its record', async () => {
        const storage = await open();
        const key = unique('k');
        const ops = [operation(new Uint8Array([0, 255, 1, 128])), operation(Buffer.from('{}'), 5)];
        const first = await storage.begin();
        expect(await first.claim(key)).toEqual({ kind: 'claimed' });
        await first.store(key, ops);
        await first.commit();
        const second = await storage.begin();
        const claim = await second.claim(key);
        await second.rollback();
        expect(claim).toEqual({
          kind: 'duplicate',
          record: { key, operations: ops, dispatched: false },
        });
        await storage.markDispatched(key);
        const third = await storage.begin();
        const again = await third.claim(key);
        await third.rollback();
        expect(again.kind === 'duplicate' && again.record.dispatched).toBe(true);
      });

      it('a record with no operations is dispatched when stored', async () => {
        const storage = await open();
        const key = unique('k');
        const tx = await storage.begin();
        await tx.claim(key);
        await tx.store(key, []);
        await tx.commit();
        const check = await storage.begin();
        const claim = await check.claim(key);
        await check.rollback();
        expect(claim).toEqual({
          kind: 'duplicate',
          record: { key, operations: [], dispatched: true },
        });
      });

      it('a rollback leaves neither the record nor the session write', async () => {
        const storage = await open();
        const key = unique('k');
        const tx = await storage.begin();
        await tx.claim(key);
        await under.write(tx.session, key);
        await tx.store(key, [operation(Buffer.from('x'))]);
        await tx.rollback();
        expect(await under.count(key)).toBe(0);
        const again = await storage.begin();
        expect(await again.claim(key)).toEqual({ kind: 'claimed' });
        await under.write(again.session, key);
        await again.store(key, []);
        await again.commit();
        expect(await under.count(key)).toBe(1);
      });

      it('a concurrent claim of a held key waits, then sees the commit as a duplicate', async () => {
        const storage = await open();
        const key = unique('k');
        const first = await storage.begin();
        await first.claim(key);
        const second = await storage.begin();
        const waiting = second.claim(key);
        await first.store(key, []);
        await first.commit();
        expect((await waiting).kind).toBe('duplicate');
        await second.rollback();
      });

      it('a concurrent claim of a held key takes it when the holder rolls back', async () => {
        const storage = await open();
        const key = unique('k');
        const first = await storage.begin();
        await first.claim(key);
        const second = await storage.begin();
        const waiting = second.claim(key);
        await first.rollback();
        expect(await waiting).toEqual({ kind: 'claimed' });
        await second.rollback();
      });

      it('keys of different endpoints do not meet', async () => {
        const key = unique('k');
        for (const storage of [await open(), await open()]) await commitRecord(storage, key, []);
      });

      it('keeps a hashed key of a hostile message id', async () => {
        const storage = await open();
        await commitRecord(storage, inboxKey(`\u0000${'x'.repeat(100_000)}`), []);
      });

      it('lists committed undispatched records only, and marks them dispatched', async () => {
        const storage = await open();
        const [done, pending, empty, open_] = [unique('a'), unique('b'), unique('c'), unique('d')];
        for (const [key, ops] of [
          [done, [operation(Buffer.from('1'))]],
          [pending, [operation(Buffer.from('2'))]],
          [empty, []],
        ] as const) {
          await commitRecord(storage, key, ops);
        }
        await storage.markDispatched(done);
        const uncommitted = await storage.begin();
        await uncommitted.claim(open_);
        await uncommitted.store(open_, [operation(Buffer.from('3'))]);
        const listed = await storage.undispatched({ olderThanMs: 0, limit: 10 });
        await uncommitted.rollback();
        expect(listed.map((record) => record.key)).toEqual([pending]);
        expect(Buffer.from(listed[0]?.operations[0]?.message.body ?? []).toString()).toBe('2');
        expect(await storage.undispatched({ olderThanMs: 3_600_000, limit: 10 })).toEqual([]);
        await storage.markDispatched(pending);
        expect(await storage.undispatched({ olderThanMs: 0, limit: 10 })).toEqual([]);
      });

      it('cleanup deletes dispatched records past retention, never undispatched ones', async () => {
        const storage = await open();
        const [dispatched, pending] = [unique('a'), unique('b')];
        for (const key of [dispatched, pending]) {
          await commitRecord(storage, key, [operation(Buffer.from('1'))]);
        }
        await storage.markDispatched(dispatched);
        expect(await storage.cleanup({ olderThanMs: 3_600_000 })).toBe(0);
        expect(await storage.cleanup({ olderThanMs: 0 })).toBe(1);
        const tx = await storage.begin();
        expect(await tx.claim(dispatched)).toEqual({ kind: 'claimed' });
        expect((await tx.claim(pending)).kind).toBe('duplicate');
        await tx.rollback();
      });
    });

    describeDurableRequests(
      () => under,
      () => open(),
    );

    describe('through an endpoint', () => {
      async function service(
        setup: {
          refusing?: () => boolean;
          beforeSend?: () => Promise<void>;
          failFirst?: boolean;
        } = {},
      ) {
        const inner = createInMemoryTransport();
        const transport = setup.refusing ? refusingTransport(inner, setup.refusing) : inner;
        const name = unique('Sales');
        const shippingName = unique('Shipping');
        let failures = setup.failFirst ? 1 : 0;
        const runs: string[] = [];
        const shipped: string[] = [];
        const sales = createEndpoint({
          name,
          transport,
          logger: silentLogger,
          persistence: under.persistence,
          routes: { [ShipOrder.name]: shippingName },
          recoverability: { immediateRetries: 3, delayedRetries: { count: 0, delayMs: 1 } },
        });
        sales.handle(PlaceOrder, async (order, ctx) => {
          runs.push(order.orderId);
          await under.write(storageSession<S>(ctx), `${name}:${order.orderId}`);
          await setup.beforeSend?.();
          if (failures-- > 0) throw new Error('transient');
          await ctx.send(ShipOrder, order);
        });
        const shipping = createEndpoint({ name: shippingName, transport, logger: silentLogger });
        // What the sender had committed when its message arrived: sends leave after the commit.
        const committedAtArrival: number[] = [];
        shipping.handle(ShipOrder, async (order, ctx) => {
          committedAtArrival.push(await under.count(`${name}:${order.orderId}`));
          shipped.push(`${order.orderId}/${ctx.messageId}`);
        });
        endpoints.push(sales, shipping);
        await shipping.start();
        await sales.start();
        const count = (orderId: string) => under.count(`${name}:${orderId}`);
        return { sales, runs, shipped, count, name, committedAtArrival };
      }

      it('handles a message id once: the write once, the send once, after the commit', async () => {
        const { sales, runs, shipped, count, name, committedAtArrival } = await service();
        await sales.send(PlaceOrder, { orderId: 'a' }, { to: name, messageId: 'same' });
        await expect.poll(() => shipped.length).toBe(1);
        await sales.send(PlaceOrder, { orderId: 'a' }, { to: name, messageId: 'same' });
        await sales.send(PlaceOrder, { orderId: 'b' }, { to: name });
        await expect.poll(() => shipped.length).toBe(2);
        await expect.poll(() => sales.stats.inFlight).toBe(0);
        expect(runs).toEqual(['a', 'b']);
        expect(await count('a')).toBe(1);
        expect(committedAtArrival).toEqual([1, 1]);
      });

      it('handles concurrent duplicates once', async () => {
        let release!: () => void;
        const gate = new Promise<void>((resolve) => {
          release = resolve;
        });
        const { sales, runs, shipped, count, name } = await service({ beforeSend: () => gate });
        await sales.send(PlaceOrder, { orderId: 'c' }, { to: name, messageId: 'twice' });
        await sales.send(PlaceOrder, { orderId: 'c' }, { to: name, messageId: 'twice' });
        await expect.poll(() => sales.stats.inFlight).toBe(2);
        release();
        await expect.poll(() => sales.stats.inFlight).toBe(0);
        expect(runs).toEqual(['c']);
        expect(await count('c')).toBe(1);
        // The send leaves before the attempt ends; its handling on the other side may come later.
        await expect.poll(() => shipped.length).toBeGreaterThan(0);
        expect(new Set(shipped).size).toBe(1);
      });

      it('rolls back a failed attempt, then commits the retry once', async () => {
        const { sales, runs, shipped, count, name } = await service({ failFirst: true });
        await sales.send(PlaceOrder, { orderId: 'd' }, { to: name });
        await expect.poll(() => shipped.length).toBe(1);
        expect(runs).toEqual(['d', 'd']);
        expect(await count('d')).toBe(1);
      });

      it('sends a committed record that was not dispatched, on redelivery, without the handler', async () => {
        // The dispatch after commit is refused; from the redelivery on, the broker takes it.
        let refusals = 1;
        const { sales, runs, shipped, count, name } = await service({
          refusing: () => refusals-- > 0,
        });
        await sales.send(PlaceOrder, { orderId: 'e' }, { to: name });
        await expect.poll(() => shipped.length).toBe(1);
        expect(runs).toEqual(['e']);
        expect(await count('e')).toBe(1);
      });

      it('endpoint.transaction commits the write with its sends, or neither', async () => {
        const { sales, shipped, count, name } = await service();
        await sales.transaction(async (scope) => {
          await under.write(storageSession<S>(scope), `${name}:f`);
          await scope.send(ShipOrder, { orderId: 'f' });
        });
        await expect.poll(() => shipped.length).toBe(1);
        expect(await count('f')).toBe(1);
        await expect(
          sales.transaction(async (scope) => {
            await under.write(storageSession<S>(scope), `${name}:g`);
            await scope.send(ShipOrder, { orderId: 'g' });
            throw new Error('no');
          }),
        ).rejects.toThrow('no');
        expect(await count('g')).toBe(0);
        await sales.send(PlaceOrder, { orderId: 'h' }, { to: name });
        await expect.poll(() => shipped.length).toBe(2);
        expect(shipped.map((s) => s.split('/')[0])).toEqual(['f', 'h']);
      });
    });
  });
}
