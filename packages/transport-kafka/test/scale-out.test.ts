import { defineMessage, type Endpoint } from '@tidings/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sleep, testWorld } from './helpers.ts';

const Ask = defineMessage<{ n: number; from: string }>('scale.Ask');
const Answer = defineMessage<{ n: number; to: string; by: string }>('scale.Answer');

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
});
