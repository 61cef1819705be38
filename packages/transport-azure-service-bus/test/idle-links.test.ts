import { createEndpoint, defineMessage, type Endpoint, silentLogger } from '@tidings/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AzureServiceBusTransport } from '../src/index.ts';
import {
  cleanPeer,
  peerInstaller,
  peerTransport,
  type ServiceBusPeer,
  startServiceBusPeer,
} from './support/peer.ts';

// Service Bus detaches links idle for 10 minutes; the peer does it after a few seconds here.
const Work = defineMessage<{ n: number }>('idle.Work');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const wait = { timeout: 30_000, interval: 20 };

let endpoints: Endpoint[] = [];
afterEach(async () => {
  await Promise.allSettled(endpoints.map((e) => e.stop()));
  endpoints = [];
});

async function start(
  peer: ServiceBusPeer,
  name: string,
  setup: (e: Endpoint) => void,
  options: Record<string, unknown> = {},
  installer = peerInstaller(peer),
): Promise<{ endpoint: Endpoint; transport: AzureServiceBusTransport }> {
  const transport = peerTransport(peer, { installer });
  const endpoint = createEndpoint({
    name,
    transport,
    logger: silentLogger,
    routes: { [Work.name]: 'idle-Server' },
    recoverability: { errorQueue: 'idle-error', immediateRetries: 0, delayedRetries: { count: 0 } },
    ...options,
  });
  setup(endpoint);
  endpoints.push(endpoint);
  await endpoint.start();
  return { endpoint, transport };
}

describe('idle link detaches', () => {
  let peer: ServiceBusPeer;
  beforeAll(async () => {
    peer = await startServiceBusPeer({ management: false, linkIdleTimeoutMs: 4_000 });
  });
  afterAll(() => peer.close());
  afterEach(() => cleanPeer(peer, 'idle-'));

  it('on a quiet queue do not restart the receiver: the SDK attached again, it is no stall', async () => {
    const handled: number[] = [];
    const server = await start(peer, 'idle-Server', (e) =>
      e.handle(Work, (p) => void handled.push(p.n)),
    );
    // A detach of the idle link, reported as a receive error ...
    await expect.poll(() => server.transport.stats.receiveErrors, wait).toBeGreaterThan(0);
    // ... and nothing arriving for longer than the watchdog waits after one (10 s).
    await sleep(14_000);
    expect(server.transport.stats.receiverRestarts).toBe(0);
    const { endpoint: sender } = await start(peer, 'idle-Sender', () => {}, { sendOnly: true });
    await sender.send(Work, { n: 1 });
    await expect.poll(() => handled, wait).toEqual([1]);
  }, 60_000);
});

describe('a handler running longer than the idle time', () => {
  let peer: ServiceBusPeer;
  beforeAll(async () => {
    peer = await startServiceBusPeer({ management: false, linkIdleTimeoutMs: 1_500 });
  });
  afterAll(() => peer.close());
  afterEach(() => cleanPeer(peer, 'idle-'));

  it('keeps its lock after the link is detached: the message is handled once', async () => {
    // A 3 s lock (the peer's own API takes it; Service Bus's minimum is 5 s) and one handler at a
    // time: the link carries nothing while the handler runs, and is detached as idle.
    const base = peerInstaller(peer);
    const installer = {
      ...base,
      ensureQueue: async (name: string, settings: object) =>
        peer.createQueue(name, { ...settings, lockDurationMs: 3_000 }),
    };
    const runs: number[] = [];
    const server = await start(
      peer,
      'idle-Server',
      (e) =>
        e.handle(Work, async (p) => {
          runs.push(p.n);
          await sleep(8_000);
        }),
      { concurrency: 1 },
      installer,
    );
    const { endpoint: sender } = await start(peer, 'idle-Sender', () => {}, { sendOnly: true });
    await sender.send(Work, { n: 1 });
    await expect.poll(() => peer.stats.completed, wait).toBe(1);
    expect(server.transport.stats.receiveErrors).toBeGreaterThan(0);
    expect(runs).toEqual([1]);
    expect(server.transport.stats.settlementFailures).toBe(0);
    expect(peer.messages('idle-Server')).toHaveLength(0);
  }, 60_000);
});
