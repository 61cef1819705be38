import { silentLogger } from '@tidings/core';
import type { IncomingTransportMessage } from '@tidings/core/transport';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cleanPeer, peerTransport, startServiceBusPeer } from './support/peer.ts';

const wait = { timeout: 10_000, interval: 20 };

describe('receiving started again after a stop', () => {
  const peerStarted = startServiceBusPeer({ management: false });
  afterAll(async () => (await peerStarted).close());
  afterEach(async () => cleanPeer(await peerStarted, 'restart-'));

  it('keeps one link per queue, takes messages on the new receivers, and leaves no link after close', async () => {
    const peer = await peerStarted;
    const endpoint = await peerTransport(peer).openEndpoint(
      {
        endpointName: 'restart-Server',
        inputQueue: 'restart-Server',
        instanceQueue: 'restart-Server.i1',
        errorQueue: 'restart-error',
        subscriptions: [],
      },
      { logger: silentLogger },
    );
    try {
      const seen: IncomingTransportMessage[] = [];
      const receive = {
        concurrency: 1,
        onMessage: async (message: IncomingTransportMessage) => {
          seen.push(message);
          return 'complete' as const;
        },
      };
      const before = peer.stats.receiverLinks;
      await endpoint.startReceiving(receive);
      // One link per own queue: the input queue and the instance queue.
      await expect.poll(() => peer.stats.receiverLinks - before, wait).toBe(2);
      for (let round = 1; round <= 3; round++) {
        await endpoint.stopReceiving();
        await endpoint.startReceiving(receive);
        await expect.poll(() => peer.stats.receiverLinks - before, wait).toBe(2);
      }
      // The receivers of the last start are the ones that take messages.
      await endpoint.dispatch([
        {
          message: {
            messageId: 'restart-m1',
            headers: { 'tidings.message-id': 'restart-m1', 'tidings.message-type': 'r.Test' },
            body: Buffer.from('{}'),
          },
          destination: { kind: 'queue', queue: 'restart-Server' },
        },
      ]);
      await expect.poll(() => seen.map((m) => m.messageId), wait).toEqual(['restart-m1']);
    } finally {
      await endpoint.close();
    }
    await expect.poll(() => peer.stats.receiverLinks, wait).toBe(0);
  });
});
