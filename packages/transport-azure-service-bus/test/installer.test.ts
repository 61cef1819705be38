import { inspect } from 'node:util';
import { ServiceBusClient } from '@azure/service-bus';
import { createEndpoint, defineMessage, silentLogger, TransportError } from '@tidings/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdministrationOptions,
  createAdministrationInstaller,
  createAzureServiceBusTransport,
  type TopologyInstaller,
} from '../src/index.ts';
import { peerAdministration, type ServiceBusPeer, startServiceBusPeer } from './support/peer.ts';

// The default installer, unchanged, against the peer's management endpoint: the real
// ServiceBusAdministrationClient over HTTPS, creating the entities AMQP clients then use.
let peer: ServiceBusPeer;
let administration: AdministrationOptions;
let installer: TopologyInstaller;

beforeAll(async () => {
  peer = await startServiceBusPeer({
    keys: [{ name: 'app', key: 'app-key', rights: ['Send', 'Listen'] }],
  });
  administration = peerAdministration(peer);
  installer = createAdministrationInstaller(
    { connectionString: peer.connectionString },
    administration,
  );
});
afterAll(async () => {
  administration.agent?.destroy();
  await peer.close();
});

describe('createAdministrationInstaller against the test peer', () => {
  it('creates queues with their settings', async () => {
    await installer.ensureQueue('orders', {
      maxDeliveryCount: 5,
      autoDeleteOnIdleMs: 300_000,
      duplicateDetectionWindowMs: 90_000,
      lockDurationMs: 30_000,
    });
    await installer.ensureQueue('orders-error', {});
    expect(peer.queueOptions('orders')).toEqual({
      maxDeliveryCount: 5,
      autoDeleteOnIdleMs: 300_000,
      duplicateDetectionWindowMs: 90_000,
      lockDurationMs: 30_000,
    });
    expect(peer.queueOptions('orders-error')).toEqual({});
  });

  it('creates a topic and a subscription that forwards to a queue', async () => {
    await installer.ensureQueue('billing', {});
    await installer.ensureTopic('order-placed');
    await installer.ensureSubscription('order-placed', 'billing', {
      forwardTo: 'billing',
      maxDeliveryCount: 7,
    });
    expect(peer.topicExists('order-placed')).toBe(true);
    expect(peer.subscriptionOptions('order-placed', 'billing')).toEqual({
      forwardTo: 'billing',
      maxDeliveryCount: 7,
    });
  });

  it('is idempotent: twice in a row, and concurrently (the losers of the race get 409)', async () => {
    await installer.ensureQueue('again', { maxDeliveryCount: 3 });
    await installer.ensureQueue('again', { maxDeliveryCount: 9 });
    // An entity that exists is left as it is.
    expect(peer.queueOptions('again')).toEqual({ maxDeliveryCount: 3 });
    await installer.ensureTopic('again-topic');
    await installer.ensureTopic('again-topic');

    await Promise.all([
      ...Array.from({ length: 5 }, () => installer.ensureQueue('raced', {})),
      ...Array.from({ length: 5 }, () => installer.ensureTopic('raced-topic')),
    ]);
    await Promise.all(
      Array.from({ length: 5 }, () =>
        installer.ensureSubscription('raced-topic', 'raced', { forwardTo: 'raced' }),
      ),
    );
    expect(peer.queueExists('raced')).toBe(true);
    expect(peer.subscriptionExists('raced-topic', 'raced')).toBe(true);
  });

  it('deletes a subscription, and deleting a missing one is fine', async () => {
    await installer.ensureTopic('gone');
    await installer.ensureSubscription('gone', 'sub', {});
    await installer.deleteSubscription('gone', 'sub');
    expect(peer.subscriptionExists('gone', 'sub')).toBe(false);
    await installer.deleteSubscription('gone', 'sub');
    await installer.deleteSubscription('no-such-topic', 'sub');
  });

  it('creates the entities AMQP uses: a message published to the topic reaches the forwarded queue', async () => {
    await installer.ensureQueue('shipping', {});
    await installer.ensureTopic('order-shipped');
    await installer.ensureSubscription('order-shipped', 'shipping', { forwardTo: 'shipping' });
    const client = new ServiceBusClient(peer.connectionString);
    try {
      await client.createSender('order-shipped').sendMessages([{ body: 'one' }, { body: 'two' }]);
      const receiver = client.createReceiver('shipping');
      const received = await receiver.receiveMessages(2, { maxWaitTimeInMs: 5000 });
      expect(received.map((m) => m.body)).toEqual(['one', 'two']);
      for (const message of received) await receiver.completeMessage(message);
    } finally {
      await client.close();
    }
    expect(peer.messages('shipping')).toHaveLength(0);
  });

  it('verifies the certificate: without the agent that trusts it, the peer is refused', async () => {
    const untrusting = createAdministrationInstaller({ connectionString: peer.connectionString });
    await expect(untrusting.ensureQueue('never', {})).rejects.toThrow(
      /self[- ]signed certificate/i,
    );
    expect(peer.queueExists('never')).toBe(false);
  });

  it("reaches the transport's default installer through `administration`; without it, start fails without the key", async () => {
    const key = /SharedAccessKey=([^;]+)/.exec(peer.connectionString)?.[1] as string;
    const trusting = createAzureServiceBusTransport({
      connectionString: peer.connectionString,
      administration,
    });
    const sales = createEndpoint({ name: 'Sales', transport: trusting, logger: silentLogger });
    await sales.start();
    expect(peer.queueExists('Sales')).toBe(true);
    await sales.stop();

    const untrusting = createAzureServiceBusTransport({ connectionString: peer.connectionString });
    const invoicing = createEndpoint({
      name: 'Invoicing',
      transport: untrusting,
      logger: silentLogger,
    });
    const failed = await invoicing.start().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(TransportError);
    expect(String((failed as Error).message)).toMatch(/creating queues/);
    // Nothing reachable from the error, its cause (the SDK's RestError and request) included.
    expect(inspect(failed, { depth: 20 })).not.toContain(key);
    expect(peer.queueExists('Invoicing')).toBe(false);
  });

  it('starts with a Send/Listen key when the entities exist; a missing one fails the start saying so', async () => {
    const Placed = defineMessage<{ n: number }>('claims.Placed');
    const appConnection = { connectionString: peer.connectionStringFor('app') };
    const make = (name: string) =>
      createEndpoint({
        name,
        // Stable, so infrastructure code can create its instance queue too.
        instanceId: 'one',
        transport: createAzureServiceBusTransport({ ...appConnection, administration }),
        logger: silentLogger,
        recoverability: { errorQueue: 'claims-error' },
      });
    // Created ahead of time, as infrastructure code would, with the Manage key.
    for (const queue of ['claims-Billing', 'claims-Billing.one', 'claims-error']) {
      await installer.ensureQueue(queue, {});
    }
    await installer.ensureTopic('claims.Placed');
    await installer.ensureSubscription('claims.Placed', 'claims-Billing', {
      forwardTo: 'claims-Billing',
    });
    const billing = make('claims-Billing');
    billing.handle(Placed, () => {});
    await billing.start();
    await billing.stop();

    const missing = make('claims-Missing');
    const failed = await missing.start().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(TransportError);
    expect(String((failed as Error).message)).toMatch(
      /Queue 'claims-Missing' does not exist, and the key or credential may not create it/,
    );
    expect(peer.queueExists('claims-Missing')).toBe(false);
  });

  it('waits out a throttled management API (429, 503) instead of failing the start', async () => {
    const throttledInstaller = createAdministrationInstaller(
      { connectionString: peer.connectionString },
      { ...administration, throttleDelayMs: 10 },
    );
    peer.throttleManagement(6, 429);
    await throttledInstaller.ensureQueue('throttled', {});
    peer.throttleManagement(1, 503);
    peer.throttleManagement(3, 429);
    await throttledInstaller.ensureTopic('throttled-topic');
    expect(peer.queueExists('throttled')).toBe(true);
    expect(peer.topicExists('throttled-topic')).toBe(true);
  });
});
