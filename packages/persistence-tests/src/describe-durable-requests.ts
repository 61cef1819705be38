import { randomUUID } from 'node:crypto';
import {
  createEndpoint,
  createInMemoryTransport,
  type DurableRequestRecord,
  type DurableRequestStore,
  defineMessage,
  type Endpoint,
  type EndpointStorage,
  RequestTimeoutError,
  silentLogger,
  storageSession,
} from '@tidings/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { PersistenceUnderTest } from './describe-persistence.js';

const CheckCredit = defineMessage<{ orderId: string }>('conformance.CheckCredit');
const CreditChecked = defineMessage<{ orderId: string }>('conformance.CreditChecked');

const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

const record = (correlationId: string): DurableRequestRecord => ({
  correlationId,
  continuation: 'after-credit-check',
  state: JSON.stringify({ orderId: correlationId, note: 'é\u0001' }),
  deadline: 1_900_000_000_000,
  requester: 'instance-a',
});

/**
 * Durable requests' records (docs/adr/0015-durable-requests.md): saved with the transaction,
 * taken exactly once by whichever of the reply and the deadline comes first. Skipped for a store
 * that declares none (`EndpointStorage.requests` undefined).
 */
export function describeDurableRequests<S>(
  under: () => PersistenceUnderTest<S>,
  open: () => Promise<EndpointStorage<S>>,
): void {
  describe('durable requests', () => {
    const endpoints: Endpoint[] = [];
    afterEach(async () => {
      await Promise.all(endpoints.splice(0).map((endpoint) => endpoint.stop()));
    });

    /** The store's requests, or undefined (the test returns early) when it keeps none. */
    async function requests(): Promise<
      { storage: EndpointStorage<S>; store: DurableRequestStore<S> } | undefined
    > {
      const storage = await open();
      return storage.requests === undefined ? undefined : { storage, store: storage.requests };
    }

    it('saves a record with the transaction, and a take deletes it once', async (context) => {
      const found = await requests();
      if (found === undefined) return context.skip();
      const { storage, store } = found;
      const id = unique('r');
      const tx = await storage.begin();
      await store.save(tx.session, record(id));
      await under().write(tx.session, id);
      expect(await store.find(id)).toBeUndefined();
      await tx.commit();
      expect(await store.find(id)).toEqual(record(id));
      expect(await store.count()).toBe(1);
      expect(await under().count(id)).toBe(1);
      const take = await storage.begin();
      expect(await store.take(take.session, id)).toEqual(record(id));
      expect(await store.take(take.session, id)).toBeUndefined();
      await take.commit();
      const again = await storage.begin();
      expect(await store.take(again.session, id)).toBeUndefined();
      await again.rollback();
      expect(await store.count()).toBe(0);
    });

    it('a rollback undoes a save, and a take', async (context) => {
      const found = await requests();
      if (found === undefined) return context.skip();
      const { storage, store } = found;
      const id = unique('r');
      const saved = await storage.begin();
      await store.save(saved.session, record(id));
      await saved.rollback();
      expect(await store.find(id)).toBeUndefined();
      const tx = await storage.begin();
      await store.save(tx.session, record(id));
      await tx.commit();
      const take = await storage.begin();
      expect(await store.take(take.session, id)).toEqual(record(id));
      await take.rollback();
      expect(await store.find(id)).toEqual(record(id));
    });

    it('a concurrent take waits: it finds nothing after a commit, the record after a rollback', async (context) => {
      const found = await requests();
      if (found === undefined) return context.skip();
      const { storage, store } = found;
      for (const ending of ['commit', 'rollback'] as const) {
        const id = unique('r');
        const tx = await storage.begin();
        await store.save(tx.session, record(id));
        await tx.commit();
        const first = await storage.begin();
        expect(await store.take(first.session, id)).toEqual(record(id));
        const second = await storage.begin();
        const waiting = store.take(second.session, id);
        await first[ending]();
        expect(await waiting).toEqual(ending === 'commit' ? undefined : record(id));
        await second.commit();
        expect(await store.find(id)).toBeUndefined();
      }
    });

    it('records of different endpoints do not meet', async (context) => {
      const a = await requests();
      const b = await requests();
      if (a === undefined || b === undefined) return context.skip();
      const id = unique('r');
      for (const { storage, store } of [a, b]) {
        const tx = await storage.begin();
        await store.save(tx.session, record(id));
        await tx.commit();
      }
      const take = await a.storage.begin();
      await a.store.take(take.session, id);
      await take.commit();
      expect(await b.store.find(id)).toEqual(record(id));
    });

    it('through an endpoint: the reply runs the continuation once, the deadline onTimeout once', async (context) => {
      const probe = await requests();
      if (probe === undefined) return context.skip();
      const transport = createInMemoryTransport();
      const credit = createEndpoint({ name: unique('Credit'), transport, logger: silentLogger });
      let answer = true;
      credit.handle(CheckCredit, async (request, ctx) => {
        if (answer) await ctx.reply(CreditChecked, request);
      });
      const name = unique('Sales');
      const sales = createEndpoint({
        name,
        transport,
        logger: silentLogger,
        persistence: under().persistence,
        routes: { [CheckCredit.name]: credit.name },
      });
      const continuation = sales.continuation('after-credit-check', {
        reply: CreditChecked,
        onReply: async (reply, state: { key: string }, ctx) => {
          await under().write(storageSession<S>(ctx), `${state.key}:${reply.orderId}`);
        },
        onTimeout: async (state: { key: string }, ctx) => {
          await under().write(storageSession<S>(ctx), `${state.key}:timeout`);
        },
      });
      endpoints.push(sales, credit);
      await credit.start();
      await sales.start();
      const key = unique('k');
      expect(
        await sales.request(
          CheckCredit,
          { orderId: 'a' },
          { continueWith: continuation, state: { key } },
        ),
      ).toEqual({ orderId: 'a' });
      expect(await under().count(`${key}:a`)).toBe(1);
      answer = false;
      await expect(
        sales.request(
          CheckCredit,
          { orderId: 'b' },
          { continueWith: continuation, state: { key }, timeoutMs: 20 },
        ),
      ).rejects.toBeInstanceOf(RequestTimeoutError);
      expect(await under().count(`${key}:timeout`)).toBe(1);
      expect(await under().count(`${key}:b`)).toBe(0);
      expect(sales.stats.awaitedDurableRequests).toBe(0);
    });
  });
}
