import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  createEndpoint,
  createInMemoryPersistence,
  createInMemoryTransport,
  defineMessage,
  type Endpoint,
  EndpointStoppedError,
  type InMemorySession,
  RemoteFailureError,
  ReplyMismatchError,
  RequestAbortedError,
  RequestTimeoutError,
  SendOnlyEndpointError,
  silentLogger,
  storageSession,
} from '../src/index.ts';
import { sleep, world } from './helpers.ts';

const CheckCredit = defineMessage<{ orderId: string; amount: number }>('d.CheckCredit');
const CreditChecked = defineMessage<{ orderId: string; ok: boolean }>('d.CreditChecked');
const Other = defineMessage<{ x: number }>('d.Other');
const PlaceOrder = defineMessage<{ orderId: string }>('d.PlaceOrder');

interface OrderState {
  readonly orderId: string;
  readonly customer: string;
}

const session = (ctx: object) => storageSession<InMemorySession>(ctx);
const unique = (name: string) => `${name}-${Math.random().toString(36).slice(2, 8)}`;

describe('durable requests (in-memory transport and persistence)', () => {
  const w = world();
  afterEach(() => w.stopAll());

  /** A credit service that replies as `answer` says (or not at all). */
  async function creditService(
    answer: (ctx: Parameters<Parameters<Endpoint['handle']>[1]>[1]) => Promise<void> | void = (
      ctx,
    ) => ctx.reply(CreditChecked, { orderId: 'o', ok: true }),
  ) {
    const name = unique('Credit');
    const credit = w.endpoint({
      name,
      logger: silentLogger,
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0, delayMs: 1 } },
    });
    credit.handle(CheckCredit, async (_request, ctx) => answer(ctx));
    await credit.start();
    return name;
  }

  /** A requesting endpoint with a continuation that counts its effects in the persistence. */
  function sales(
    credit: string,
    options: {
      persistence?: ReturnType<typeof createInMemoryPersistence>;
      instanceId?: string;
      name?: string;
      expect?: typeof CreditChecked | 'code';
      failing?: () => boolean;
      onFailure?: boolean;
    } = {},
  ) {
    const persistence = options.persistence ?? createInMemoryPersistence();
    const effects: string[] = [];
    const endpoint = w.endpoint({
      name: options.name ?? unique('Sales'),
      instanceId: options.instanceId ?? 'a',
      persistence,
      logger: silentLogger,
      routes: { [CheckCredit.name]: credit },
      recoverability: { immediateRetries: 1, delayedRetries: { count: 0, delayMs: 1 } },
    });
    const count = (ctx: object, key: string) => {
      session(ctx).set(key, ((session(ctx).get(key) as number | undefined) ?? 0) + 1);
    };
    const continuation = endpoint.continuation('after-credit-check', {
      reply: options.expect ?? CreditChecked,
      onReply: async (reply: unknown, state: OrderState, ctx) => {
        if (options.failing?.()) throw new Error('continuation failed');
        count(ctx, `reply:${state.orderId}`);
        effects.push(`reply:${state.orderId}:${JSON.stringify(reply)}:${endpoint.instanceId}`);
      },
      onTimeout: async (state: OrderState, ctx) => {
        count(ctx, `timeout:${state.orderId}`);
        effects.push(`timeout:${state.orderId}`);
      },
      ...(options.onFailure
        ? {
            onFailure: async (error: Error, state: OrderState) => {
              effects.push(`failure:${state.orderId}:${error.name}`);
            },
          }
        : {}),
    });
    return { endpoint, persistence, continuation, effects };
  }

  it('runs the continuation once with the state and resolves the await after it committed', async () => {
    const credit = await creditService();
    const { endpoint, persistence, continuation, effects } = sales(credit);
    await endpoint.start();
    const reply = await endpoint.request(
      CheckCredit,
      { orderId: 'o', amount: 5 },
      { continueWith: continuation, state: { orderId: 'o1', customer: 'c' }, timeoutMs: 5_000 },
    );
    expect(reply).toEqual({ orderId: 'o', ok: true });
    expect(effects).toEqual(['reply:o1:{"orderId":"o","ok":true}:a']);
    expect(persistence.data.get('reply:o1')).toBe(1);
    expect(persistence.requests(endpoint.name)).toEqual([]);
    expect(endpoint.stats.awaitedDurableRequests).toBe(0);
    expect(endpoint.stats.pendingRequests).toBe(0);
  });

  it('runs onTimeout once at the deadline, and a late reply goes the unmatched way', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const credit = await creditService(async (ctx) => {
      await released;
      await ctx.reply(CreditChecked, { orderId: 'o', ok: true });
    });
    const { endpoint, persistence, continuation, effects } = sales(credit);
    await endpoint.start();
    const request = endpoint.request(
      CheckCredit,
      { orderId: 'o', amount: 5 },
      { continueWith: continuation, state: { orderId: 'o2', customer: 'c' }, timeoutMs: 50 },
    );
    await expect(request).rejects.toBeInstanceOf(RequestTimeoutError);
    expect(effects).toEqual(['timeout:o2']);
    release();
    await expect.poll(() => endpoint.stats.unmatchedReplies).toBe(1);
    expect(effects).toEqual(['timeout:o2']);
    expect(persistence.data.get('timeout:o2')).toBe(1);
    expect(persistence.data.get('reply:o2')).toBeUndefined();
    expect(persistence.requests(endpoint.name)).toEqual([]);
  });

  it('runs the continuation on another instance when the requester is gone, and tells it when it still waits', async () => {
    const credit = await creditService();
    const persistence = createInMemoryPersistence();
    const name = unique('Sales');
    const a = sales(credit, { persistence, name, instanceId: 'a' });
    const b = sales(credit, { persistence, name, instanceId: 'b' });
    await a.endpoint.start();
    await b.endpoint.start();
    // Sent by a: whichever instance takes the reply from the shared queue runs the continuation.
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        a.endpoint.request(
          CheckCredit,
          { orderId: 'o', amount: i },
          { continueWith: a.continuation, state: { orderId: `m${i}`, customer: 'c' } },
        ),
      ),
    );
    expect(replies).toHaveLength(20);
    const all = [...a.effects, ...b.effects];
    expect(all).toHaveLength(20);
    expect(b.effects.length).toBeGreaterThan(0);
    for (let i = 0; i < 20; i++) expect(persistence.data.get(`reply:m${i}`)).toBe(1);
    expect(a.endpoint.stats.awaitedDurableRequests).toBe(0);
  });

  it('is sent in a handler transaction: nothing leaves if the handler fails', async () => {
    const credit = await creditService();
    const { endpoint, persistence, continuation, effects } = sales(credit);
    let fail = true;
    endpoint.handle(PlaceOrder, async (order, ctx) => {
      await continuation.send(
        ctx,
        CheckCredit,
        { orderId: order.orderId, amount: 1 },
        {
          state: { orderId: order.orderId, customer: 'h' },
        },
      );
      if (fail) {
        fail = false;
        throw new Error('rolled back');
      }
    });
    await endpoint.start();
    await endpoint.send(PlaceOrder, { orderId: 'h1' }, { to: endpoint.name });
    await expect.poll(() => effects.length).toBe(1);
    await sleep(20);
    expect(effects).toEqual(['reply:h1:{"orderId":"o","ok":true}:a']);
    expect(persistence.requests(endpoint.name)).toEqual([]);
  });

  it('hands a fault reply or a reply of another kind to onFailure as a typed error', async () => {
    const faulty = await creditService(() => {
      throw new Error('no credit service today');
    });
    const { endpoint, continuation, effects } = sales(faulty, { onFailure: true });
    await endpoint.start();
    await expect(
      endpoint.request(
        CheckCredit,
        { orderId: 'o', amount: 5 },
        { continueWith: continuation, state: { orderId: 'f1', customer: 'c' } },
      ),
    ).rejects.toBeInstanceOf(RemoteFailureError);
    expect(effects).toEqual(['failure:f1:RemoteFailureError']);

    const wrong = await creditService((ctx) => ctx.reply(Other, { x: 1 }));
    const second = sales(wrong, { onFailure: true });
    await second.endpoint.start();
    await expect(
      second.endpoint.request(
        CheckCredit,
        { orderId: 'o', amount: 5 },
        { continueWith: second.continuation, state: { orderId: 'f2', customer: 'c' } },
      ),
    ).rejects.toBeInstanceOf(ReplyMismatchError);
    expect(second.effects).toEqual(['failure:f2:ReplyMismatchError']);
  });

  it('the first reply wins: a second one goes the unmatched way, never to the continuation', async () => {
    const credit = await creditService(async (ctx) => {
      await ctx.reply(CreditChecked, { orderId: 'first', ok: true });
      await ctx.reply(CreditChecked, { orderId: 'second', ok: false });
    });
    const { endpoint, persistence, continuation, effects } = sales(credit);
    await endpoint.start();
    const reply = await endpoint.request(
      CheckCredit,
      { orderId: 'o', amount: 5 },
      { continueWith: continuation, state: { orderId: 'w1', customer: 'c' } },
    );
    await expect.poll(() => endpoint.stats.unmatchedReplies).toBe(1);
    expect(effects).toHaveLength(1);
    expect(persistence.data.get('reply:w1')).toBe(1);
    expect(effects[0]).toContain(JSON.stringify(reply));
  });

  it('takes return codes when the continuation expects them', async () => {
    const credit = await creditService((ctx) => ctx.reply(7));
    const { endpoint, continuation, effects } = sales(credit, { expect: 'code' });
    await endpoint.start();
    const code = await endpoint.request(
      CheckCredit,
      { orderId: 'o', amount: 5 },
      { continueWith: continuation, state: { orderId: 'c1', customer: 'c' } },
    );
    expect(code).toBe(7);
    expect(effects).toEqual(['reply:c1:7:a']);
  });

  it('an abort cancels the wait only: the continuation still runs', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const credit = await creditService(async (ctx) => {
      await released;
      await ctx.reply(CreditChecked, { orderId: 'o', ok: true });
    });
    const { endpoint, continuation, effects } = sales(credit);
    await endpoint.start();
    const controller = new AbortController();
    const request = endpoint.request(
      CheckCredit,
      { orderId: 'o', amount: 5 },
      {
        continueWith: continuation,
        state: { orderId: 'ab', customer: 'c' },
        signal: controller.signal,
      },
    );
    await sleep(10);
    controller.abort();
    await expect(request).rejects.toBeInstanceOf(RequestAbortedError);
    expect(endpoint.stats.awaitedDurableRequests).toBe(0);
    release();
    await expect.poll(() => effects).toEqual(['reply:ab:{"orderId":"o","ok":true}:a']);
  });

  it('a continuation that throws is retried; the await rejects with its error once retries are spent', async () => {
    const credit = await creditService();
    let failures = 0;
    const { endpoint, continuation, effects } = sales(credit, {
      failing: () => failures++ < 1,
    });
    await endpoint.start();
    await endpoint.request(
      CheckCredit,
      { orderId: 'o', amount: 5 },
      { continueWith: continuation, state: { orderId: 'r1', customer: 'c' } },
    );
    expect(failures).toBe(2);
    expect(effects).toHaveLength(1);

    const always = sales(credit, { failing: () => true });
    await always.endpoint.start();
    await expect(
      always.endpoint.request(
        CheckCredit,
        { orderId: 'o', amount: 5 },
        { continueWith: always.continuation, state: { orderId: 'r2', customer: 'c' } },
      ),
    ).rejects.toThrow('continuation failed');
  });

  it('a reply that loses the race to its deadline goes to its handlers, in its own transaction', async () => {
    const credit = await creditService();
    const inner = createInMemoryPersistence();
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The reply's take (the first: the deadline is 100 ms away) waits while the deadline takes it.
    let takes = 0;
    const persistence: typeof inner = {
      ...inner,
      async open(context) {
        const storage = await inner.open(context);
        const requests = storage.requests as NonNullable<typeof storage.requests>;
        return Object.assign(Object.create(storage) as typeof storage, {
          requests: {
            ...requests,
            save: requests.save.bind(requests),
            find: requests.find.bind(requests),
            count: requests.count.bind(requests),
            async take(session: InMemorySession, correlationId: string) {
              if (takes++ === 0) await held;
              return requests.take(session, correlationId);
            },
          },
        });
      },
    };
    const { endpoint, continuation, effects } = sales(credit, { persistence });
    const handled: string[] = [];
    endpoint.handle(CreditChecked, (reply) => {
      handled.push(reply.orderId);
    });
    await endpoint.start();
    const request = endpoint.request(
      CheckCredit,
      { orderId: 'o', amount: 5 },
      { continueWith: continuation, state: { orderId: 'late', customer: 'c' }, timeoutMs: 100 },
    );
    await expect(request).rejects.toBeInstanceOf(RequestTimeoutError);
    release();
    await expect.poll(() => handled).toEqual(['o']);
    expect(effects).toEqual(['timeout:late']);
    expect(inner.requests(endpoint.name)).toEqual([]);
  });

  it('an await holds a slot of maxPendingRequests: at the bound, requests wait as plain ones do, and one that times out waiting writes and sends nothing', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let received = 0;
    const credit = await creditService(async (ctx) => {
      received++;
      await released;
      await ctx.reply(CreditChecked, { orderId: 'o', ok: true });
    });
    const persistence = createInMemoryPersistence();
    const endpoint = w.endpoint({
      name: unique('Bounded'),
      persistence,
      logger: silentLogger,
      routes: { [CheckCredit.name]: credit },
      maxPendingRequests: 1,
    });
    const effects: string[] = [];
    const continuation = endpoint.continuation('after-credit-check', {
      reply: CreditChecked,
      onReply: async (_reply, state: { orderId: string }) => {
        effects.push(state.orderId);
      },
    });
    await endpoint.start();
    const durable = (orderId: string, timeoutMs: number) =>
      endpoint.request(
        CheckCredit,
        { orderId, amount: 5 },
        { continueWith: continuation, state: { orderId }, timeoutMs },
      );

    const first = durable('first', 5_000);
    await expect.poll(() => received).toBe(1);
    expect(endpoint.stats).toMatchObject({ awaitedDurableRequests: 1, waitingRequests: 0 });
    // The durable await holds the only slot: a plain request and another durable one wait.
    const plain = endpoint.request(
      CheckCredit,
      { orderId: 'p', amount: 5 },
      { expect: CreditChecked },
    );
    const starved = durable('starved', 100);
    expect(endpoint.stats.waitingRequests).toBe(2);
    const error = await starved.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestTimeoutError);
    expect((error as Error).message).toContain('no free slot');
    expect(persistence.requests(endpoint.name)).toHaveLength(1);
    expect(endpoint.stats).toMatchObject({ waitingRequests: 1, pendingRequests: 0 });

    release();
    await expect(first).resolves.toEqual({ orderId: 'o', ok: true });
    await expect(plain).resolves.toEqual({ orderId: 'o', ok: true });
    expect(received).toBe(2);
    expect(effects).toEqual(['first']);
    expect(persistence.requests(endpoint.name)).toEqual([]);
    expect(endpoint.stats).toMatchObject({
      awaitedDurableRequests: 0,
      pendingRequests: 0,
      waitingRequests: 0,
    });
  });

  it('a durable request waiting for a slot at stop rejects with EndpointStoppedError, nothing written or sent', async () => {
    let received = 0;
    const credit = await creditService(async () => {
      received++;
    });
    const persistence = createInMemoryPersistence();
    const endpoint = w.endpoint({
      name: unique('Stopping'),
      persistence,
      logger: silentLogger,
      routes: { [CheckCredit.name]: credit },
      maxPendingRequests: 1,
    });
    const continuation = endpoint.continuation('after-credit-check', {
      reply: CreditChecked,
      onReply: (_reply, _state: { orderId: string }) => {},
    });
    await endpoint.start();
    const ask = () =>
      endpoint.request(
        CheckCredit,
        { orderId: 'o', amount: 5 },
        { continueWith: continuation, state: { orderId: 'o' }, timeoutMs: 10_000 },
      );
    const holding = ask();
    await expect.poll(() => received).toBe(1);
    const waiting = ask();
    expect(endpoint.stats.waitingRequests).toBe(1);
    await endpoint.stop();
    await expect(holding).rejects.toBeInstanceOf(EndpointStoppedError);
    await expect(waiting).rejects.toBeInstanceOf(EndpointStoppedError);
    expect(persistence.requests(endpoint.name)).toHaveLength(1);
    expect(received).toBe(1);
    expect(endpoint.stats).toMatchObject({ awaitedDurableRequests: 0, waitingRequests: 0 });
  });

  it('refuses what cannot hold the guarantee', async () => {
    const transport = createInMemoryTransport();
    const noPersistence = createEndpoint({ name: unique('N'), transport, logger: silentLogger });
    noPersistence.continuation('c', { reply: CreditChecked, onReply: () => {} });
    await expect(noPersistence.start()).rejects.toBeInstanceOf(ConfigurationError);
    const sendOnly = createEndpoint({ name: unique('S'), transport, sendOnly: true });
    expect(() => sendOnly.continuation('c', { reply: CreditChecked, onReply: () => {} })).toThrow(
      SendOnlyEndpointError,
    );
  });
});
