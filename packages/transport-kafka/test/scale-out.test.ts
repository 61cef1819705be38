import { defineMessage, type Endpoint } from '@tidings/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sleep, testWorld } from './helpers.ts';

const Ask = defineMessage<{ n: number; from: string }>('scale.Ask');
const Answer = defineMessage<{ n: number; to: string; by: string }>('scale.Answer');
const Existing = defineMessage<{ n: number }>('scale.Existing');
const Added = defineMessage<{ n: number }>('scale.Added');

describe('scale-out', () => {
  let world: ReturnType<typeof testWorld>;
  beforeEach(() => {
    world = testWorld();
  });
  afterEach(async () => {
    await world.dispose();
  });

  it('two client instances, 500 requests each: every reply reaches the instance that asked, while a third server instance joins', async () => {
    const answeredBy = new Map<string, number>();
    const server = (instanceId: string) => {
      const endpoint = world.endpoint('Server', { instanceId, concurrency: 32 });
      endpoint.handle(Ask, async (p, ctx) => {
        answeredBy.set(instanceId, (answeredBy.get(instanceId) ?? 0) + 1);
        await ctx.reply(Answer, { n: p.n, to: p.from, by: instanceId });
      });
      return endpoint;
    };
    await server('s1').start();
    await server('s2').start();
    const client = async (instanceId: string) => {
      const endpoint = world.endpoint('Client', {
        instanceId,
        routes: { [Ask.name]: world.name('Server') },
        requestTimeoutMs: 55_000,
      });
      await endpoint.start();
      return endpoint;
    };
    const [c1, c2] = await Promise.all([client('c1'), client('c2')]);
    let rounds = 0;
    const ask = async (c: Endpoint) => {
      const replies = [];
      // 500 each, 25 at a time and paced, so the stream is still running when the third
      // instance joins and the group rebalances.
      for (let start = 0; start < 500; start += 25) {
        replies.push(
          ...(await Promise.all(
            Array.from({ length: 25 }, (_, i) =>
              c.request(Ask, { n: start + i, from: c.instanceId as string }, { expect: Answer }),
            ),
          )),
        );
        rounds++;
        await sleep(200);
        // The last fifth of the stream slows down until the third instance takes part, so it
        // joins while requests are flowing however slow the rebalance is on this machine.
        const until = Date.now() + 2_000;
        while (start >= 375 && !answeredBy.has('s3') && Date.now() < until) await sleep(50);
      }
      return replies;
    };
    const asking = Promise.all([ask(c1), ask(c2)]);
    // Once replies flow (the server's group has joined), a third instance joins it.
    while (rounds < 6) await sleep(20);
    const third = server('s3');
    await third.start();
    const [one, two] = await asking;

    expect(one.map((r) => r.n)).toEqual(Array.from({ length: 500 }, (_, n) => n));
    expect(two.map((r) => r.n)).toEqual(Array.from({ length: 500 }, (_, n) => n));
    expect(one.every((r) => r.to === 'c1')).toBe(true);
    expect(two.every((r) => r.to === 'c2')).toBe(true);
    expect(c1.stats.pendingRequests).toBe(0);
    expect(c2.stats.pendingRequests).toBe(0);
    // The third instance joined while requests were flowing and took a share of them.
    expect(answeredBy.get('s3') ?? 0).toBeGreaterThan(0);
    expect([...answeredBy.values()].reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1000);
  });

  it('instances that subscribe to different events (a rolling deploy adding a handler): each event reaches an instance that handles it', async () => {
    const handled: Array<{ by: string; type: string; n: number }> = [];
    const record = (by: string, type: string) => (p: { n: number }) =>
      void handled.push({ by, type, n: p.n });
    // The running version handles one event; it joins first and leads the group.
    const old = world.endpoint('Server', { instanceId: 'old' });
    old.handle(Existing, record('old', 'existing'));
    await old.start();
    const publisher = world.endpoint('Publisher', { sendOnly: true });
    await publisher.start();
    await publisher.publish(Existing, { n: 0 });
    await expect.poll(() => handled.length, { timeout: 30_000, interval: 50 }).toBe(1);
    // The new version handles a second event too.
    const added = world.endpoint('Server', { instanceId: 'new' });
    added.handle(Existing, record('new', 'existing'));
    added.handle(Added, record('new', 'added'));
    await added.start();
    for (let n = 1; n <= 10; n++) await publisher.publish(Added, { n });
    for (let n = 1; n <= 10; n++) await publisher.publish(Existing, { n });
    // At least once: a rebalance may hand a record over before its position is committed.
    const ofType = (type: string) =>
      [...new Set(handled.filter((h) => h.type === type).map((h) => h.n))].sort((a, b) => a - b);
    const all = Array.from({ length: 10 }, (_, i) => i + 1);
    await expect.poll(() => ofType('added'), { timeout: 45_000, interval: 50 }).toEqual(all);
    await expect
      .poll(() => ofType('existing'), { timeout: 45_000, interval: 50 })
      .toEqual([0, ...all]);
    expect(handled.filter((h) => h.type === 'added').every((h) => h.by === 'new')).toBe(true);
  });
});
