import { createEndpoint, defineMessage, silentLogger } from '@tidings/core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  peerInstaller,
  peerTransport,
  type ServiceBusPeer,
  startServiceBusPeer,
} from './support/peer.ts';

const Slow = defineMessage<{ n: number }>('renewal.Slow');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let peer: ServiceBusPeer;
beforeAll(async () => {
  peer = await startServiceBusPeer();
});
afterAll(() => peer.close());

it('renews the lock while a handler runs longer than it: the message is handled once', async () => {
  const base = peerInstaller(peer);
  // Queues with a 3 s lock: without renewal the message would come again while still handled.
  const installer = {
    ...base,
    ensureQueue: async (name: string, settings: object) =>
      peer.createQueue(name, { ...settings, lockDurationMs: 3_000 }),
  };
  const runs: number[] = [];
  const server = createEndpoint({
    name: 'renewal-Server',
    transport: peerTransport(peer, { installer }),
    logger: silentLogger,
    recoverability: { errorQueue: 'renewal-error' },
  });
  server.handle(Slow, async (p) => {
    runs.push(p.n);
    await sleep(6_500);
  });
  await server.start();
  const sender = createEndpoint({
    name: 'renewal-Sender',
    transport: peerTransport(peer, { installer }),
    logger: silentLogger,
    sendOnly: true,
    routes: { [Slow.name]: 'renewal-Server' },
    recoverability: { errorQueue: 'renewal-error' },
  });
  await sender.start();
  await sender.send(Slow, { n: 1 });
  await expect.poll(() => peer.stats.completed, { timeout: 15_000, interval: 100 }).toBe(1);
  expect(runs).toEqual([1]);
  expect(peer.messages('renewal-Server')).toHaveLength(0);
  await sender.stop();
  await server.stop();
}, 30_000);
