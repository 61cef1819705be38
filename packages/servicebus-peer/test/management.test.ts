import { connect } from 'node:net';
import { ServiceBusAdministrationClient, ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServiceBusPeer, startServiceBusPeer } from '../src/index.ts';

// The real ServiceBusAdministrationClient drives the peer's management endpoint (HTTPS on the
// AMQP port). It trusts the peer's self-signed certificate through its own tlsOptions.
let peer: ServiceBusPeer;
let admin: ServiceBusAdministrationClient;

const adminFor = (connectionString: string) =>
  new ServiceBusAdministrationClient(connectionString, {
    tlsOptions: { ca: peer.certificate as string },
  });

/** The RestError (from @azure/core-rest-pipeline) an operation fails with. */
const failure = async (operation: Promise<unknown>) => {
  const error = await operation.then(
    () => undefined,
    (e: unknown) => e as { name?: string; statusCode?: number; code?: string },
  );
  expect(error?.name).toBe('RestError');
  return error as { statusCode?: number; code?: string };
};

beforeAll(async () => {
  peer = await startServiceBusPeer();
  admin = adminFor(peer.connectionString);
});
afterAll(() => peer.close());

describe('servicebus peer management API, driven by ServiceBusAdministrationClient', () => {
  it('creates a queue with settings, reports it, lists it and deletes it', async () => {
    expect(await admin.queueExists('orders')).toBe(false);
    const created = await admin.createQueue('orders', {
      maxDeliveryCount: 3,
      autoDeleteOnIdle: 'PT300S',
      requiresDuplicateDetection: true,
      duplicateDetectionHistoryTimeWindow: 'PT30S',
      lockDuration: 'PT45S',
    });
    expect(created._response.status).toBe(201);
    expect(created.name).toBe('orders');
    expect(created.maxDeliveryCount).toBe(3);
    // The same entity the AMQP side uses, with the settings the peer models.
    expect(peer.queueExists('orders')).toBe(true);
    expect(peer.queueOptions('orders')).toEqual({
      maxDeliveryCount: 3,
      autoDeleteOnIdleMs: 300_000,
      duplicateDetectionWindowMs: 30_000,
      lockDurationMs: 45_000,
    });
    expect(await admin.queueExists('ORDERS')).toBe(true);
    const read = await admin.getQueue('orders');
    expect(read).toMatchObject({
      name: 'orders',
      maxDeliveryCount: 3,
      autoDeleteOnIdle: 'PT5M',
      requiresDuplicateDetection: true,
      duplicateDetectionHistoryTimeWindow: 'PT30S',
      lockDuration: 'PT45S',
      requiresSession: false,
      status: 'Active',
    });

    const names: string[] = [];
    for await (const queue of admin.listQueues()) names.push(queue.name);
    expect(names).toContain('orders');

    await admin.deleteQueue('orders');
    expect(peer.queueExists('orders')).toBe(false);
    expect(await admin.queueExists('orders')).toBe(false);
  });

  it('creates topics and subscriptions with forwardTo; messages sent over AMQP are forwarded', async () => {
    await admin.createQueue('inbox');
    expect(await admin.topicExists('events')).toBe(false);
    await admin.createTopic('events');
    expect(await admin.topicExists('events')).toBe(true);
    expect((await admin.getTopic('events')).name).toBe('events');
    expect(await admin.subscriptionExists('events', 'inbox')).toBe(false);
    const subscription = await admin.createSubscription('events', 'inbox', {
      forwardTo: 'inbox',
      maxDeliveryCount: 4,
    });
    expect(subscription).toMatchObject({ topicName: 'events', subscriptionName: 'inbox' });
    // The SDK makes a relative forwardTo absolute (sb://host/inbox); the peer keeps the path.
    expect(subscription.forwardTo).toBe(`sb://127.0.0.1:${peer.port}/inbox`);
    expect(peer.subscriptionOptions('events', 'inbox')).toEqual({
      forwardTo: 'inbox',
      maxDeliveryCount: 4,
    });
    expect(await admin.subscriptionExists('events', 'inbox')).toBe(true);

    const client = new ServiceBusClient(peer.connectionString);
    try {
      await client.createSender('events').sendMessages({ body: 'forwarded' });
      const receiver = client.createReceiver('inbox');
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
      expect(message?.body).toBe('forwarded');
      await receiver.completeMessage(message as never);
    } finally {
      await client.close();
    }

    const topics: string[] = [];
    for await (const topic of admin.listTopics()) topics.push(topic.name);
    expect(topics).toEqual(['events']);
    const subscriptions: string[] = [];
    for await (const s of admin.listSubscriptions('events')) {
      subscriptions.push(`${s.topicName}/${s.subscriptionName}`);
    }
    expect(subscriptions).toEqual(['events/inbox']);

    await admin.deleteSubscription('events', 'inbox');
    expect(peer.subscriptionExists('events', 'inbox')).toBe(false);
    await admin.deleteTopic('events');
    expect(peer.topicExists('events')).toBe(false);
    await admin.deleteQueue('inbox');
  });

  it('lists past one page (100 entries) by following the next link', async () => {
    for (let i = 0; i < 105; i++) peer.createQueue(`many-${i}`);
    let count = 0;
    for await (const queue of admin.listQueues()) if (queue.name.startsWith('many-')) count++;
    expect(count).toBe(105);
    for (let i = 0; i < 105; i++) peer.deleteQueue(`many-${i}`);
  });

  it('answers 409 for an entity that exists and 404 for one that does not, as the SDK maps them', async () => {
    await admin.createQueue('twice');
    const exists = await failure(admin.createQueue('twice'));
    expect(exists.statusCode).toBe(409);
    expect(exists.code).toBe('MessageEntityAlreadyExistsError');
    // Queues and topics share one namespace of names.
    expect((await failure(admin.createTopic('twice'))).code).toBe(
      'MessageEntityAlreadyExistsError',
    );

    const missingDelete = await failure(admin.deleteQueue('nowhere'));
    expect(missingDelete.statusCode).toBe(404);
    expect(missingDelete.code).toBe('MessageEntityNotFoundError');
    expect((await failure(admin.deleteSubscription('nowhere', 's'))).code).toBe(
      'MessageEntityNotFoundError',
    );
    // A GET of a missing entity is 200 with an empty feed; the SDK reports it as not found.
    expect((await failure(admin.getQueue('nowhere'))).code).toBe('MessageEntityNotFoundError');
    // A subscription needs its topic.
    expect((await failure(admin.createSubscription('nowhere', 's'))).statusCode).toBe(404);
    await admin.deleteQueue('twice');
  });

  it('refuses a wrong key with 401 and changes nothing', async () => {
    const wrong = adminFor(
      peer.connectionString.replace('SharedAccessKey=peer-key', 'SharedAccessKey=nope'),
    );
    const refused = await failure(wrong.createQueue('sneaky'));
    expect(refused.statusCode).toBe(401);
    expect(refused.code).toBe('UnauthorizedRequestError');
    expect(peer.queueExists('sneaky')).toBe(false);
    // Exists checks swallow every error, so a refused one reads as "does not exist".
    expect(await wrong.queueExists('sneaky')).toBe(false);
  });

  it('refuses sessions, which the peer does not model', async () => {
    const refused = await failure(admin.createQueue('sessions', { requiresSession: true }));
    expect(refused.statusCode).toBe(400);
    expect(peer.queueExists('sessions')).toBe(false);
  });

  it.each([
    ['autoDeleteOnIdle below 5 minutes', { autoDeleteOnIdle: 'PT299S' }],
    [
      'a duplicate detection window below 20 seconds',
      { requiresDuplicateDetection: true, duplicateDetectionHistoryTimeWindow: 'PT19S' },
    ],
    [
      'a duplicate detection window above 7 days',
      { requiresDuplicateDetection: true, duplicateDetectionHistoryTimeWindow: 'P7DT1S' },
    ],
    ['a lock duration below 5 seconds', { lockDuration: 'PT4S' }],
    ['a lock duration above 5 minutes', { lockDuration: 'PT301S' }],
    ['forwardTo an entity that does not exist', { forwardTo: 'missing-target' }],
  ])('refuses %s with 400, as Service Bus does', async (_what, options) => {
    const refused = await failure(admin.createQueue('out-of-range', options));
    expect(refused.statusCode).toBe(400);
    expect(peer.queueExists('out-of-range')).toBe(false);
  });

  it('refuses a subscription forwarding to a missing queue with 400', async () => {
    await admin.createTopic('forward-check');
    const refused = await failure(
      admin.createSubscription('forward-check', 's', { forwardTo: 'missing-target' }),
    );
    expect(refused.statusCode).toBe(400);
    expect(peer.subscriptionExists('forward-check', 's')).toBe(false);
    await admin.deleteTopic('forward-check');
  });

  it('is not trusted without its certificate: verification stays on', async () => {
    const untrusted = new ServiceBusAdministrationClient(peer.connectionString);
    const error = await untrusted.getQueue('x').then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    expect(error?.code).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
  });

  it('survives a client that resets before sending a byte', async () => {
    const socket = connect(peer.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.resetAndDestroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await admin.queueExists('anything')).toBe(false);
  });

  it('leaves AMQP clients on the same port as they were, and can be turned off', async () => {
    const plain = await startServiceBusPeer({ management: false });
    try {
      expect(plain.certificate).toBeUndefined();
      plain.createQueue('q');
      const client = new ServiceBusClient(plain.connectionString);
      await client.createSender('q').sendMessages({ body: 1 });
      await client.close();
      expect(plain.messages('q')).toHaveLength(1);
    } finally {
      await plain.close();
    }
  });
});
