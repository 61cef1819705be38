import { ServiceBusAdministrationClient, ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServiceBusPeer, startServiceBusPeer } from '../src/index.ts';

// Shared access policies with Send, Listen and Manage rights, checked as Service Bus checks them:
// on each link's attach (the claim put through CBS for its audience) and on the management API.
let peer: ServiceBusPeer;

beforeAll(async () => {
  peer = await startServiceBusPeer({
    keys: [
      { name: 'sender', key: 'send-key', rights: ['Send'] },
      { name: 'listener', key: 'listen-key', rights: ['Listen'] },
      { name: 'app', key: 'app-key', rights: ['Send', 'Listen'] },
      { name: 'manager', key: 'manage-key', rights: ['Manage'] },
    ],
  });
});
afterAll(() => peer.close());

const noRetries = { retryOptions: { maxRetries: 0, timeoutInMs: 5_000 } };
const outcome = (operation: Promise<unknown>) =>
  operation.then(
    () => 'ok',
    (error: unknown) => (error as { code?: string }).code ?? String(error),
  );
const admin = (keyName: string) =>
  new ServiceBusAdministrationClient(peer.connectionStringFor(keyName), {
    tlsOptions: { ca: peer.certificate as string },
    retryOptions: { maxRetries: 0 },
  });

describe('servicebus peer claims', () => {
  it('lets Send send and nothing else, Listen receive and nothing else', async () => {
    peer.createQueue('claims');
    const sender = new ServiceBusClient(peer.connectionStringFor('sender'), noRetries);
    const listener = new ServiceBusClient(peer.connectionStringFor('listener'), noRetries);
    try {
      expect(await outcome(sender.createSender('claims').sendMessages({ body: 1 }))).toBe('ok');
      expect(
        await outcome(sender.createReceiver('claims').receiveMessages(1, { maxWaitTimeInMs: 500 })),
      ).toBe('UnauthorizedAccess');
      expect(await outcome(listener.createSender('claims').sendMessages({ body: 2 }))).toBe(
        'UnauthorizedAccess',
      );
      const receiver = listener.createReceiver('claims');
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
      expect(message?.body).toBe(1);
      // Renewing and settling over $management need Listen too, which this key has.
      await receiver.renewMessageLock(message as never);
      await receiver.completeMessage(message as never);
      // Scheduling needs Send.
      expect(
        await outcome(
          listener
            .createSender('claims')
            .scheduleMessages({ body: 3 }, new Date(Date.now() + 60_000)),
        ),
      ).toBe('UnauthorizedAccess');
      expect(peer.messages('claims')).toHaveLength(0);
    } finally {
      await sender.close();
      await listener.close();
    }
  });

  it('answers 401 on the management API without the Manage claim, reads and writes alike', async () => {
    peer.createQueue('managed');
    for (const key of ['sender', 'listener', 'app']) {
      const refused = await admin(key)
        .getQueue('managed')
        .then(
          () => undefined,
          (e: unknown) => e as { statusCode?: number; code?: string },
        );
      expect(refused?.statusCode).toBe(401);
      expect(refused?.code).toBe('UnauthorizedRequestError');
      const create = await admin(key)
        .createQueue('never-made')
        .then(
          () => undefined,
          (e: unknown) => e as { statusCode?: number },
        );
      expect(create?.statusCode).toBe(401);
    }
    expect(peer.queueExists('never-made')).toBe(false);
    expect((await admin('manager').getQueue('managed')).name).toBe('managed');
  });

  it('throttles the management API on request: 429 and 503', async () => {
    peer.throttleManagement(1, 429);
    const throttled = await admin('manager')
      .getQueue('managed')
      .then(
        () => undefined,
        (e: unknown) => e as { statusCode?: number },
      );
    expect(throttled?.statusCode).toBe(429);
    peer.throttleManagement(1, 503);
    const busy = await admin('manager')
      .getQueue('managed')
      .then(
        () => undefined,
        (e: unknown) => e as { statusCode?: number },
      );
    expect(busy?.statusCode).toBe(503);
    expect((await admin('manager').getQueue('managed')).name).toBe('managed');
  });
});
