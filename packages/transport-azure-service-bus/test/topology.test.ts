import {
  ConfigurationError,
  createEndpoint,
  DestinationNotFoundError,
  defineMessage,
  MessageTooLargeError,
  silentLogger,
  TransportError,
} from '@tidings/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAzureServiceBusTransport, subscriptionName, topicName } from '../src/index.ts';
import {
  peerInstaller,
  peerTransport,
  type ServiceBusPeer,
  startServiceBusPeer,
} from './support/peer.ts';

const Happened = defineMessage<{ n: number }>('topology.Happened');
let peer: ServiceBusPeer;
beforeAll(async () => {
  peer = await startServiceBusPeer();
});
afterAll(() => peer.close());

/** A started send-only endpoint on the peer. */
async function startSender(name: string) {
  const sender = createEndpoint({
    name,
    transport: peerTransport(peer),
    logger: silentLogger,
    sendOnly: true,
    recoverability: { errorQueue: 'topo-error' },
  });
  await sender.start();
  return sender;
}

describe('topology through the installer seam', () => {
  it('creates the endpoint queue, an instance queue that expires when idle, the error queue, and a forwarding subscription per event type', async () => {
    const endpoint = createEndpoint({
      name: 'topo-Billing',
      instanceId: 'b1',
      transport: peerTransport(peer, {
        instanceQueueAutoDeleteOnIdleMs: 600_000,
        duplicateDetectionWindowMs: 60_000,
      }),
      logger: silentLogger,
      recoverability: { errorQueue: 'topo-error' },
    });
    const got: number[] = [];
    endpoint.handle(Happened, (p) => void got.push(p.n));
    await endpoint.start();
    try {
      expect(peer.queueExists('topo-Billing')).toBe(true);
      expect(peer.queueOptions('topo-Billing')?.duplicateDetectionWindowMs).toBe(60_000);
      expect(peer.queueOptions('topo-Billing.b1')?.autoDeleteOnIdleMs).toBe(600_000);
      expect(peer.queueExists('topo-error')).toBe(true);
      const topic = topicName(Happened.name);
      const subscription = subscriptionName('topo-Billing');
      expect(peer.subscriptionOptions(topic, subscription)?.forwardTo).toBe('topo-Billing');

      const publisher = createEndpoint({
        name: 'topo-Pub',
        transport: peerTransport(peer),
        logger: silentLogger,
        sendOnly: true,
        recoverability: { errorQueue: 'topo-error' },
      });
      await publisher.start();
      await publisher.publish(Happened, { n: 1 });
      await expect.poll(() => got).toEqual([1]);

      // Unsubscribing removes the subscription; later events do not arrive.
      const connection = await peerTransport(peer).openEndpoint(
        {
          endpointName: 'topo-Billing',
          inputQueue: 'topo-Billing',
          errorQueue: 'topo-error',
          subscriptions: [],
        },
        { logger: silentLogger },
      );
      await connection.unsubscribe(Happened.name);
      await connection.close();
      expect(peer.subscriptionExists(topic, subscription)).toBe(false);
      await publisher.publish(Happened, { n: 2 });
      await publisher.stop();
    } finally {
      await endpoint.stop();
    }
    expect(got).toEqual([1]);
  });

  it('publishing an event nobody subscribed to succeeds; sending to a missing queue fails with DestinationNotFoundError', async () => {
    const sender = await startSender('topo-Sender');
    try {
      await sender.publish(defineMessage<{ n: number }>('topology.Unheard'), { n: 1 });
      const error = await sender.send(Happened, { n: 1 }, { to: 'topo-Nowhere' }).catch((e) => e);
      expect(error).toBeInstanceOf(DestinationNotFoundError);
      expect(error.destination).toBe('topo-Nowhere');
    } finally {
      await sender.stop();
    }
  });

  it('concurrent sends to a missing destination share its sender: every publish succeeds, every send fails with DestinationNotFoundError', async () => {
    const sender = await startSender('topo-Crowd');
    const Unheard = defineMessage<{ n: number }>('topology.UnheardCrowd');
    try {
      // The first failure drops the cached sender while the others still use it.
      const published = await Promise.allSettled(
        Array.from({ length: 20 }, (_, n) => sender.publish(Unheard, { n })),
      );
      expect(published.filter((r) => r.status === 'rejected')).toEqual([]);
      const sent = await Promise.allSettled(
        Array.from({ length: 20 }, (_, n) => sender.send(Happened, { n }, { to: 'topo-Gone' })),
      );
      const errors = sent.map((r) => (r.status === 'rejected' ? r.reason : undefined));
      expect(errors.filter((e) => !(e instanceof DestinationNotFoundError))).toEqual([]);
    } finally {
      await sender.stop();
    }
  });

  it('a message within the limit counted in characters but over it once encoded is refused with MessageTooLargeError before sending', async () => {
    peer.createQueue('topo-Big');
    const sender = await startSender('topo-BigSender');
    try {
      // 130,000 characters, 260,000 bytes: core's count (body and headers) stays under the 256 KB
      // limit; the AMQP encoding of the rest does not.
      const headers = { note: 'é'.repeat(130_000) };
      const error = await sender
        .send(Happened, { n: 1 }, { to: 'topo-Big', headers })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MessageTooLargeError);
      expect(peer.messages('topo-Big')).toHaveLength(0);
    } finally {
      await sender.stop();
    }
  });

  it('keeps at most maxCachedSenders sender links open, closing the least recently used', async () => {
    for (const queue of ['topo-A', 'topo-B', 'topo-C']) peer.createQueue(queue);
    const sender = createEndpoint({
      name: 'topo-Fanout',
      transport: peerTransport(peer, { maxCachedSenders: 2 }),
      logger: silentLogger,
      sendOnly: true,
      recoverability: { errorQueue: 'topo-error' },
    });
    await sender.start();
    const open = () => ['topo-A', 'topo-B', 'topo-C'].map((queue) => peer.senderCount(queue));
    try {
      await sender.send(Happened, { n: 1 }, { to: 'topo-A' });
      await sender.send(Happened, { n: 2 }, { to: 'topo-B' });
      await sender.send(Happened, { n: 3 }, { to: 'topo-A' });
      expect(open()).toEqual([1, 1, 0]);
      // A third destination: B, used least recently, is closed.
      await sender.send(Happened, { n: 4 }, { to: 'topo-C' });
      await expect.poll(() => open()).toEqual([1, 0, 1]);
      // Sending to B again opens a new link; every message arrived.
      await sender.send(Happened, { n: 5 }, { to: 'topo-B' });
      await expect.poll(() => open()).toEqual([0, 1, 1]);
      expect(['topo-A', 'topo-B', 'topo-C'].map((q) => peer.messages(q).length)).toEqual([2, 2, 1]);
    } finally {
      await sender.stop();
      for (const queue of ['topo-A', 'topo-B', 'topo-C']) peer.deleteQueue(queue);
    }
  });

  it('a wrong key fails with a typed error that does not contain the key', async () => {
    const wrongKey = 'd3Jvbmcta2V5LXZhbHVl';
    const transport = createAzureServiceBusTransport({
      connectionString: peer.connectionString.replace('peer-key', wrongKey),
      installer: peerInstaller(peer),
      operationTimeoutMs: 5_000,
      maxRetries: 0,
    });
    const sender = createEndpoint({
      name: 'topo-Denied',
      transport,
      logger: silentLogger,
      sendOnly: true,
      recoverability: { errorQueue: 'topo-error' },
    });
    await sender.start();
    try {
      const error = await sender.send(Happened, { n: 1 }, { to: 'topo-error' }).catch((e) => e);
      expect(error).toBeInstanceOf(TransportError);
      expect(error.message).toContain('UnauthorizedAccess');
      expect(error.message).not.toContain(wrongKey);
      expect(error.isRetryable).toBe(false);
    } finally {
      await sender.stop();
    }
  });

  it('an endpoint handling two event types that would share a topic does not start', async () => {
    const endpoint = createEndpoint({
      name: 'topo-Clash',
      transport: peerTransport(peer),
      logger: silentLogger,
      recoverability: { errorQueue: 'topo-error' },
    });
    endpoint.handle(defineMessage('topology:Clashed'), () => {});
    endpoint.handle(defineMessage('Topology-clashed'), () => {});
    const starting = endpoint.start();
    await expect(starting).rejects.toBeInstanceOf(ConfigurationError);
    await expect(starting).rejects.toThrow(/'topology:Clashed' and 'Topology-clashed'/);
    expect(peer.queueExists('topo-Clash')).toBe(false);
  });

  it('refuses options without a connection', () => {
    expect(() => createAzureServiceBusTransport({} as never)).toThrow(/connectionString/);
  });
});
