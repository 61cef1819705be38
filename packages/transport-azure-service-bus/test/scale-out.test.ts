import { createEndpoint, defineMessage, type Endpoint, silentLogger } from '@tidings/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { peerTransport, type ServiceBusPeer, startServiceBusPeer } from './support/peer.ts';

const Ask = defineMessage<{ n: number; from: string }>('scale.Ask');
const Answer = defineMessage<{ n: number; to: string; by: string }>('scale.Answer');

let peer: ServiceBusPeer;
const endpoints: Endpoint[] = [];
beforeAll(async () => {
  peer = await startServiceBusPeer();
});
afterAll(async () => {
  await Promise.allSettled(endpoints.map((e) => e.stop()));
  await peer.close();
});

async function started(name: string, instanceId: string, setup: (e: Endpoint) => void) {
  const endpoint = createEndpoint({
    name,
    instanceId,
    transport: peerTransport(peer),
    logger: silentLogger,
    concurrency: 32,
    routes: { [Ask.name]: 'scale-Server' },
    recoverability: { errorQueue: 'scale-error' },
  });
  setup(endpoint);
  await endpoint.start();
  endpoints.push(endpoint);
  return endpoint;
}

it('two instances of a client endpoint, 500 requests each: every reply reaches the instance that asked', async () => {
  const answer = (e: Endpoint) =>
    e.handle(Ask, async (p, ctx) => {
      await ctx.reply(Answer, { n: p.n, to: p.from, by: e.instanceId ?? '' });
    });
  await started('scale-Server', 's1', answer);
  await started('scale-Server', 's2', answer);
  const one = await started('scale-Client', 'c1', () => {});
  const two = await started('scale-Client', 'c2', () => {});
  // Each instance has its own queue for replies; both share the endpoint's input queue.
  expect(peer.queueExists('scale-Client.c1')).toBe(true);
  expect(peer.queueExists('scale-Client.c2')).toBe(true);
  const ask = (client: Endpoint) =>
    Promise.all(
      Array.from({ length: 500 }, (_, n) =>
        client.request(Ask, { n, from: client.instanceId as string }, { expect: Answer }),
      ),
    );
  const [a, b] = await Promise.all([ask(one), ask(two)]);
  expect(a.map((r) => r.n)).toEqual(Array.from({ length: 500 }, (_, n) => n));
  expect(b.map((r) => r.n)).toEqual(Array.from({ length: 500 }, (_, n) => n));
  expect(a.every((r) => r.to === 'c1')).toBe(true);
  expect(b.every((r) => r.to === 'c2')).toBe(true);
  // Both server instances took part (competing consumers on the shared queue).
  expect(new Set([...a, ...b].map((r) => r.by))).toEqual(new Set(['s1', 's2']));
  expect(one.stats.pendingRequests + two.stats.pendingRequests).toBe(0);
  expect(one.stats.unmatchedReplies + two.stats.unmatchedReplies).toBe(0);
}, 60_000);
