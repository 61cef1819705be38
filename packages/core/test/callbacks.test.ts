import { afterEach, describe, expect, it, vi } from 'vitest';
import { CallbackRegistry, PendingRequest } from '../src/callbacks/callback-registry.ts';
import {
  defineMessage,
  EndpointStoppedError,
  RequestAbortedError,
  RequestTimeoutError,
  UsageError,
} from '../src/index.ts';
import { recordingLogger, sleep, world } from './helpers.ts';

const Ping = defineMessage<{ n: number }>('t.Ping');
const Pong = defineMessage<{ n: number }>('t.Pong');

function entry(log: string[], name: string) {
  return new PendingRequest(
    't.Ping',
    'any',
    () => log.push(`${name}:ok`),
    undefined,
    () => {},
    (error) => log.push(`${name}:${(error as Error).name}`),
  ) as unknown as PendingRequest;
}

describe('CallbackRegistry', () => {
  it('times out each request after its own timeout, in deadline order, and drains', async () => {
    const log: string[] = [];
    const registry = new CallbackRegistry(10);
    for (const [id, ms] of [
      ['slow', 120],
      ['fast', 30],
      ['fast2', 30],
    ] as const) {
      registry.acquire('t.Ping');
      registry.register(id, entry(log, id), { timeoutMs: ms });
    }
    expect(registry.size).toBe(3);
    await expect.poll(() => log.length).toBe(3);
    expect(log).toEqual([
      'fast:RequestTimeoutError',
      'fast2:RequestTimeoutError',
      'slow:RequestTimeoutError',
    ]);
    expect(registry.size).toBe(0);
  });

  it('a reply taken before the deadline never times out', async () => {
    const log: string[] = [];
    const registry = new CallbackRegistry(10);
    registry.acquire('t.Ping');
    registry.register('a', entry(log, 'a'), { timeoutMs: 20 });
    const taken = registry.take('a');
    taken?.complete({ kind: 'code', code: 0, headers: {} });
    expect(registry.take('a')).toBeUndefined();
    await sleep(40);
    expect(log).toEqual(['a:ok']);
  });

  it('answered requests with many distinct timeouts leave only what the pending ones need', () => {
    const registry = new CallbackRegistry(10_000);
    registry.acquire('t.Ping');
    registry.register('long', entry([], 'long'), { timeoutMs: 60_000 });
    // Distinct timeouts, as requests that waited for a slot or pass on a web budget have; some
    // land beside the long request's.
    for (let i = 0; i < 5_000; i++) {
      registry.acquire('t.Ping');
      registry.register(`r${i}`, entry([], `r${i}`), { timeoutMs: 58_000 + i });
    }
    expect(registry.deadlineStats.queues).toBeGreaterThan(1);
    // Replies arrive out of order; every 100th request stays pending.
    const answered = Array.from({ length: 5_000 }, (_, i) => i).filter((i) => i % 100 !== 0);
    for (const i of [...answered.filter((i) => i % 2), ...answered.filter((i) => !(i % 2))]) {
      expect(registry.take(`r${i}`)).toBeDefined();
    }
    expect(registry.size).toBe(51);
    // Answered entries are compacted away once they outnumber the pending ones in their queue.
    const stats = registry.deadlineStats;
    expect(stats.entries).toBeLessThanOrEqual(2 * 51);
    expect(stats.queues).toBeLessThanOrEqual(51);
    expect(stats.timers).toBe(stats.queues);

    for (let i = 0; i < 5_000; i += 100) registry.take(`r${i}`);
    expect(registry.deadlineStats).toMatchObject({ queues: 1, timers: 1, entries: 1 });
    registry.take('long');
    // A few emptied queues stay, their timers unref'd, for the next requests to reuse.
    const idle = registry.deadlineStats;
    expect(idle).toMatchObject({ queues: 0, timers: 0, entries: 0 });
    expect(idle.idle).toBeGreaterThan(0);
    expect(idle.idle).toBeLessThanOrEqual(8);
    registry.rejectAll(new EndpointStoppedError('x'));
    expect(registry.deadlineStats).toEqual({ queues: 0, timers: 0, entries: 0, idle: 0 });
  });

  it('requests one after another reuse one timer, which holds the process only while one is pending', async () => {
    const registry = new CallbackRegistry(10);
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    try {
      for (let i = 0; i < 100; i++) {
        registry.acquire('t.Ping');
        registry.register(`s${i}`, entry([], `s${i}`), { timeoutMs: 30_000 });
        registry.take(`s${i}`);
      }
      expect(setTimeoutSpy).toHaveBeenCalledTimes(1);
      const timer = setTimeoutSpy.mock.results[0]?.value as NodeJS.Timeout;
      expect(registry.deadlineStats).toEqual({ queues: 0, timers: 0, entries: 0, idle: 1 });
      expect(timer.hasRef()).toBe(false);
      registry.acquire('t.Ping');
      registry.register('held', entry([], 'held'), { timeoutMs: 30_000 });
      expect(timer.hasRef()).toBe(true);
      expect(registry.deadlineStats).toEqual({ queues: 1, timers: 1, entries: 1, idle: 0 });
    } finally {
      setTimeoutSpy.mockRestore();
      registry.rejectAll(new EndpointStoppedError('x'));
    }
    expect(registry.deadlineStats).toEqual({ queues: 0, timers: 0, entries: 0, idle: 0 });
  });

  it('a request reusing an idle timer armed for an earlier one times out at its own deadline', async () => {
    const registry = new CallbackRegistry(10);
    registry.acquire('t.Ping');
    registry.register('early', entry([], 'early'), { timeoutMs: 40 });
    registry.take('early');
    await sleep(25);
    // The idle timer fires about 15 ms from now, before this request's deadline: it re-arms.
    let elapsed = 0;
    const registeredAt = performance.now();
    registry.acquire('t.Ping');
    registry.register(
      'late',
      new PendingRequest(
        't.Ping',
        'any',
        () => {},
        undefined,
        () => {},
        () => {
          elapsed = performance.now() - registeredAt;
        },
      ) as unknown as PendingRequest,
      { timeoutMs: 40 },
    );
    await expect.poll(() => elapsed).toBeGreaterThan(0);
    expect(elapsed).toBeGreaterThanOrEqual(40);
    expect(elapsed).toBeLessThan(40 + 100);
    expect(registry.size).toBe(0);
    expect(registry.deadlineStats).toEqual({ queues: 0, timers: 0, entries: 0, idle: 0 });
  });

  it('requests with distinct timeouts all time out, none before its own timeout', async () => {
    const registry = new CallbackRegistry(100);
    const outcomes: Array<{ timeoutMs: number; elapsed: number; error: unknown }> = [];
    // Longer timeouts first, so a later request's deadline comes before an earlier one's.
    for (let timeoutMs = 40; timeoutMs > 20; timeoutMs--) {
      const registeredAt = performance.now();
      const fail = (error: unknown) =>
        outcomes.push({ timeoutMs, elapsed: performance.now() - registeredAt, error });
      registry.acquire('t.Ping');
      registry.register(
        `t${timeoutMs}`,
        new PendingRequest(
          't.Ping',
          'any',
          () => {},
          undefined,
          () => {},
          fail,
        ) as unknown as PendingRequest,
        { timeoutMs },
      );
    }
    await expect.poll(() => outcomes.length).toBe(20);
    for (const { timeoutMs, elapsed, error } of outcomes) {
      expect(error).toBeInstanceOf(RequestTimeoutError);
      expect(error).toMatchObject({ timeoutMs });
      expect(elapsed).toBeGreaterThanOrEqual(timeoutMs);
    }
    expect(registry.size).toBe(0);
    expect(registry.deadlineStats).toEqual({ queues: 0, timers: 0, entries: 0, idle: 0 });
  });

  it('aborted and rejected requests leave no deadline bookkeeping behind', () => {
    const log: string[] = [];
    const registry = new CallbackRegistry(10);
    const controller = new AbortController();
    registry.acquire('t.Ping');
    registry.register('aborted', entry(log, 'aborted'), {
      timeoutMs: 1_000,
      signal: controller.signal,
    });
    registry.acquire('t.Ping');
    registry.register('kept', entry(log, 'kept'), { timeoutMs: 2_000 });
    controller.abort();
    expect(registry.deadlineStats).toMatchObject({ queues: 1, timers: 1, entries: 1 });
    registry.rejectAll(new EndpointStoppedError('x'));
    expect(log).toEqual(['aborted:RequestAbortedError', 'kept:EndpointStoppedError']);
    expect(registry.deadlineStats).toEqual({ queues: 0, timers: 0, entries: 0, idle: 0 });
  });

  it('a timeout longer than the longest Node timer is waited for in steps Node can arm', async () => {
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    try {
      const log: string[] = [];
      const registry = new CallbackRegistry(1);
      registry.acquire('t.Ping');
      registry.register('far', entry(log, 'far'), { timeoutMs: 3_000_000_000 });
      await sleep(20);
      const delays = setTimeoutSpy.mock.calls.map((call) => call[1] ?? 0);
      // Node fires a longer timer after 1 ms, which would wake the registry every millisecond.
      expect(Math.max(...delays)).toBeLessThanOrEqual(2 ** 31 - 1);
      expect(log).toEqual([]);
      registry.rejectAll(new EndpointStoppedError('x'));
      expect(log).toEqual(['far:EndpointStoppedError']);
    } finally {
      setTimeoutSpy.mockRestore();
    }
  });

  it('refuses a duplicate correlation id and gives the slot back', () => {
    const registry = new CallbackRegistry(1);
    registry.acquire('t.Ping');
    registry.register('dup', entry([], 'x'), { timeoutMs: 1000 });
    expect(registry.acquire('t.Ping')).toBeInstanceOf(Promise);
    registry.remove('dup');
    registry.acquire('t.Ping');
    registry.register('dup', entry([], 'y'), { timeoutMs: 1000 });
    registry.acquire('t.Ping')?.catch(() => {});
    expect(() => registry.register('dup', entry([], 'z'), { timeoutMs: 1000 })).toThrow(UsageError);
    registry.rejectAll(new EndpointStoppedError('x'));
    expect(registry.size).toBe(0);
  });

  it('waiters get slots in order as entries leave; an aborted waiter leaves the line', async () => {
    const registry = new CallbackRegistry(1);
    registry.acquire('t.Ping');
    registry.register('first', entry([], 'first'), { timeoutMs: 1000 });
    const order: string[] = [];
    const controller = new AbortController();
    const a = registry.acquire('t.Ping', controller.signal)?.then(() => order.push('a'));
    const b = registry.acquire('t.Ping')?.then(() => order.push('b'));
    expect(registry.waiting).toBe(2);
    controller.abort();
    await expect(a).rejects.toBeInstanceOf(RequestAbortedError);
    registry.remove('first');
    await b;
    expect(order).toEqual(['b']);
    expect(registry.waiting).toBe(0);
    registry.release();
  });
});

describe('request and register on an endpoint', () => {
  const w = world();
  afterEach(() => w.stopAll());

  async function pair(serverHandler?: Parameters<ReturnType<typeof w.endpoint>['handle']>[1]) {
    const server = w.endpoint({ name: `S${Math.random().toString(36).slice(2, 7)}` });
    server.handle(
      Ping,
      serverHandler ??
        (async (p, ctx) => {
          await ctx.reply(Pong, { n: p.n });
        }),
    );
    await server.start();
    const client = w.endpoint({
      name: `C${Math.random().toString(36).slice(2, 7)}`,
      routes: { [Ping.name]: server.name },
      requestTimeoutMs: 150,
    });
    return { server, client };
  }

  it('uses the endpoint default timeout', async () => {
    const { client } = await pair(async () => {});
    await client.start();
    const error = await client.request(Ping, { n: 1 }, { expect: Pong }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestTimeoutError);
    expect(error).toMatchObject({
      code: 'TIDINGS_REQUEST_TIMEOUT',
      timeoutMs: 150,
      isRetryable: true,
    });
    expect(client.stats.pendingRequests).toBe(0);
  });

  it('a matched callback completes before the endpoint handlers for the reply type run', async () => {
    const order: string[] = [];
    const { client } = await pair();
    client.handle(Pong, () => void order.push('handler'));
    await client.start();
    await client.send(Ping, { n: 1 }).register(async () => {
      await sleep(20);
      order.push('callback');
    });
    await expect.poll(() => order).toEqual(['callback', 'handler']);
  });

  it('register() after the send was dispatched is a UsageError', async () => {
    const { client } = await pair();
    await client.start();
    const sent = client.send(Ping, { n: 1 });
    await sent;
    expect(() => sent.register(() => {})).toThrow(UsageError);
    expect(() => sent.register(() => {})).toThrow(/same expression/);
  });

  it('a failed dispatch rejects the callback and leaves no entry', async () => {
    const client = w.endpoint({ name: 'Orphan' });
    await client.start();
    const sent = client.send(Ping, { n: 1 }, { to: 'NoSuchQueue' });
    const result = sent.register(() => 'never');
    await expect(result).rejects.toMatchObject({ code: 'TIDINGS_DESTINATION_NOT_FOUND' });
    await expect(sent).rejects.toMatchObject({ code: 'TIDINGS_DESTINATION_NOT_FOUND' });
    expect(client.stats.pendingRequests).toBe(0);
  });

  it('a callback that throws rejects its own promise, and the endpoint keeps going', async () => {
    const { client } = await pair();
    await client.start();
    await expect(
      client.send(Ping, { n: 1 }).register(() => {
        throw new Error('in callback');
      }),
    ).rejects.toThrow('in callback');
    await expect(client.request(Ping, { n: 2 }, { expect: Pong })).resolves.toEqual({ n: 2 });
  });

  it('requests waiting for a slot are released by stop() with EndpointStoppedError', async () => {
    const { client } = await pair(async () => {});
    const stopping = w.endpoint({
      name: 'Cap',
      routes: { [Ping.name]: 'Nobody' },
      maxPendingRequests: 1,
    });
    void client;
    await w.endpoint({ name: 'Nobody', faultReplies: 'off' }).start();
    await stopping.start();
    const first = stopping.request(Ping, { n: 1 }, { expect: Pong, timeoutMs: 10_000 });
    const second = stopping.request(Ping, { n: 2 }, { expect: Pong, timeoutMs: 10_000 });
    await expect.poll(() => stopping.stats.waitingRequests).toBe(1);
    await stopping.stop();
    await expect(first).rejects.toBeInstanceOf(EndpointStoppedError);
    await expect(second).rejects.toBeInstanceOf(EndpointStoppedError);
    expect(stopping.stats).toMatchObject({ pendingRequests: 0, waitingRequests: 0 });
  });

  it('an unmatched reply goes to the error queue when configured so', async () => {
    const logger = recordingLogger();
    const server = w.endpoint({ name: 'LateServer' });
    server.handle(Ping, async (p, ctx) => {
      await sleep(60);
      await ctx.reply(Pong, { n: p.n });
    });
    await server.start();
    const client = w.endpoint({
      name: 'Strict',
      logger,
      routes: { [Ping.name]: 'LateServer' },
      unmatchedReplies: 'error-queue',
    });
    await client.start();
    await expect(client.request(Ping, { n: 1 }, { timeoutMs: 20 })).rejects.toThrow(
      RequestTimeoutError,
    );
    await expect.poll(() => client.stats.movedToErrorQueue).toBe(1);
    expect(client.stats.unmatchedReplies).toBe(1);
  });
});

describe('waiting for a slot', () => {
  const w = world();
  afterEach(() => w.stopAll());

  it('counts against the request timeout', async () => {
    // No handler and no fault reply: a server that never answers.
    await w.endpoint({ name: 'Mute', faultReplies: 'off' }).start();
    const client = w.endpoint({
      name: 'Full',
      routes: { [Ping.name]: 'Mute' },
      maxPendingRequests: 1,
    });
    await client.start();
    const first = client.request(Ping, { n: 1 }, { timeoutMs: 5_000 });
    const second = client.request(Ping, { n: 2 }, { timeoutMs: 100 });
    await expect(second).rejects.toBeInstanceOf(RequestTimeoutError);
    expect(client.stats).toMatchObject({ pendingRequests: 1, waitingRequests: 0 });
    await client.stop();
    await expect(first).rejects.toBeInstanceOf(EndpointStoppedError);
  });

  it('a request that waited for a slot and then timed out reports the timeout it asked for', async () => {
    // No handler and no fault reply: a server that never answers.
    await w.endpoint({ name: 'Mute', faultReplies: 'off' }).start();
    const client = w.endpoint({
      name: 'Full',
      routes: { [Ping.name]: 'Mute' },
      maxPendingRequests: 1,
    });
    await client.start();
    const first = client.request(Ping, { n: 1 }, { timeoutMs: 100 });
    // Gets the slot once the first times out, with what is left of its 300 ms.
    const second = client.request(Ping, { n: 2 }, { timeoutMs: 300 });
    await expect(first).rejects.toMatchObject({ timeoutMs: 100 });
    expect(client.stats).toMatchObject({ pendingRequests: 1, waitingRequests: 0 });
    const error = await second.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestTimeoutError);
    expect(error).toMatchObject({ timeoutMs: 300 });
    expect((error as Error).message).toContain('300');
  });
});
