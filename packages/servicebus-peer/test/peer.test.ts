import {
  type ServiceBusClient as Client,
  isServiceBusError,
  ServiceBusClient,
  type ServiceBusReceivedMessage,
} from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServiceBusPeer, startServiceBusPeer } from '../src/index.ts';

// The real @azure/service-bus SDK drives the peer: every behaviour here is one the transport needs.
let peer: ServiceBusPeer;
let client: Client;
let counter = 0;
const queue = () => {
  const name = `q${counter++}`;
  peer.createQueue(name);
  return name;
};

beforeAll(async () => {
  peer = await startServiceBusPeer();
  client = new ServiceBusClient(peer.connectionString);
});
afterAll(async () => {
  await client.close();
  await peer.close();
});

const bodies = (messages: ServiceBusReceivedMessage[]) => messages.map((m) => m.body);

describe('servicebus peer, driven by @azure/service-bus', () => {
  it('sends one message and a batch; receives them in peek-lock with lock tokens and annotations', async () => {
    const name = queue();
    const sender = client.createSender(name);
    await sender.sendMessages({ body: { n: 1 }, messageId: 'first', correlationId: 'c1' });
    const batch = await sender.createMessageBatch();
    expect(batch.maxSizeInBytes).toBe(256 * 1024);
    expect(batch.tryAddMessage({ body: 'b1', applicationProperties: { k: 'v' } })).toBe(true);
    expect(batch.tryAddMessage({ body: 'b2' })).toBe(true);
    await sender.sendMessages(batch);
    expect(peer.messages(name)).toHaveLength(3);
    // The peer stamps a message id where the client sent none.
    expect(peer.messages(name).every((m) => typeof m.messageId === 'string')).toBe(true);

    const receiver = client.createReceiver(name);
    const received = await receiver.receiveMessages(3, { maxWaitTimeInMs: 5000 });
    expect(bodies(received)).toEqual([{ n: 1 }, 'b1', 'b2']);
    const [first, second] = received as [ServiceBusReceivedMessage, ServiceBusReceivedMessage];
    expect(first.messageId).toBe('first');
    expect(first.correlationId).toBe('c1');
    expect(second.applicationProperties).toEqual({ k: 'v' });
    expect(first.lockToken).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.deliveryCount).toBe(0);
    expect(Number(first.sequenceNumber)).toBeGreaterThan(0);
    expect(first.enqueuedTimeUtc).toBeInstanceOf(Date);
    expect(first.lockedUntilUtc?.getTime()).toBeGreaterThan(Date.now());
    expect(peer.lockedCount(name)).toBe(3);
    for (const message of received) await receiver.completeMessage(message);
    expect(peer.lockedCount(name)).toBe(0);
    expect(peer.messages(name)).toHaveLength(0);
    await receiver.close();
    await sender.close();
  });

  it('receiveMessages returns what is there when the peer answers the drain', async () => {
    const name = queue();
    await client.createSender(name).sendMessages({ body: 'only' });
    const receiver = client.createReceiver(name);
    // Asks for 10 with a long wait: only the drain answer ends the call before the test timeout.
    const received = await receiver.receiveMessages(10, { maxWaitTimeInMs: 60_000 });
    expect(bodies(received)).toEqual(['only']);
    await receiver.completeMessage(received[0] as ServiceBusReceivedMessage);
    await receiver.close();
  });

  it('keeps delivering on one link past 2048 settled deliveries', async () => {
    const name = queue();
    const sender = client.createSender(name);
    const total = 2100;
    for (let start = 0; start < total; start += 300) {
      await sender.sendMessages(
        Array.from({ length: Math.min(300, total - start) }, (_, i) => ({ body: start + i })),
      );
    }
    const receiver = client.createReceiver(name);
    let completed = 0;
    const subscription = receiver.subscribe(
      {
        processMessage: async (m) => {
          await receiver.completeMessage(m);
          completed++;
        },
        processError: async () => {},
      },
      { autoCompleteMessages: false, maxConcurrentCalls: 50 },
    );
    await expect.poll(() => completed, { timeout: 20_000 }).toBe(total);
    await subscription.close();
    await Promise.all([receiver.close(), sender.close()]);
  });

  it('abandon redelivers with a higher delivery count; dead-letter keeps reason and description', async () => {
    const name = queue();
    const sender = client.createSender(name);
    await sender.sendMessages([{ body: 'again' }, { body: 'dead' }]);
    const receiver = client.createReceiver(name);
    const [again, dead] = (await receiver.receiveMessages(2, { maxWaitTimeInMs: 5000 })) as [
      ServiceBusReceivedMessage,
      ServiceBusReceivedMessage,
    ];
    await receiver.abandonMessage(again);
    await receiver.deadLetterMessage(dead, {
      deadLetterReason: 'Unreadable',
      deadLetterErrorDescription: 'not json',
    });
    const [redelivered] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
    expect(redelivered?.body).toBe('again');
    expect(redelivered?.deliveryCount).toBe(1);
    await receiver.completeMessage(redelivered as ServiceBusReceivedMessage);

    const dlq = client.createReceiver(name, { subQueueType: 'deadLetter' });
    const [dl] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 5000 });
    expect(dl?.body).toBe('dead');
    expect(dl?.deadLetterReason).toBe('Unreadable');
    expect(dl?.deadLetterErrorDescription).toBe('not json');
    await dlq.completeMessage(dl as ServiceBusReceivedMessage);
    await Promise.all([receiver.close(), dlq.close()]);
  });

  it('dead-letters after maxDeliveryCount abandons', async () => {
    const name = `q${counter++}`;
    peer.createQueue(name, { maxDeliveryCount: 2 });
    await client.createSender(name).sendMessages({ body: 'poison' });
    const receiver = client.createReceiver(name);
    for (let i = 0; i < 2; i++) {
      const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
      await receiver.abandonMessage(m as ServiceBusReceivedMessage);
    }
    const dead = peer.messages(`${name}/$DeadLetterQueue`);
    expect(dead.map((m) => m.applicationProperties.DeadLetterReason)).toEqual([
      'MaxDeliveryCountExceeded',
    ]);
    await receiver.close();
  });

  it('schedules (plain send and $management), cancels, renews locks and peeks', async () => {
    const name = queue();
    const sender = client.createSender(name);
    const receiver = client.createReceiver(name);
    const [sequence] = await sender.scheduleMessages(
      { body: 'cancelled' },
      new Date(Date.now() + 60_000),
    );
    expect(peer.scheduledCount(name)).toBe(1);
    await sender.cancelScheduledMessages(sequence as never);
    expect(peer.scheduledCount(name)).toBe(0);
    await sender.scheduleMessages({ body: 'scheduled' }, new Date(Date.now() + 300));
    await sender.sendMessages({
      body: 'enqueue-time',
      scheduledEnqueueTimeUtc: new Date(Date.now() + 300),
    });
    expect(peer.scheduledCount(name)).toBe(2);
    expect(await receiver.peekMessages(5)).toHaveLength(0);
    const received = await receiver.receiveMessages(2, { maxWaitTimeInMs: 5000 });
    const more =
      received.length < 2 ? await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 }) : [];
    const all = [...received, ...more];
    expect(bodies(all).sort()).toEqual(['enqueue-time', 'scheduled']);
    const before = all[0]?.lockedUntilUtc?.getTime() ?? 0;
    const renewed = await receiver.renewMessageLock(all[0] as ServiceBusReceivedMessage);
    expect(renewed.getTime()).toBeGreaterThanOrEqual(before);
    for (const m of all) await receiver.completeMessage(m);
    await sender.sendMessages({ body: 'peeked' });
    expect(bodies(await receiver.peekMessages(5))).toEqual(['peeked']);
    await Promise.all([receiver.close(), sender.close()]);
  });

  it('streams with subscribe() and keeps delivering after a forced detach and a dropped connection', async () => {
    const name = queue();
    const own = new ServiceBusClient(peer.connectionString, {
      // A send in flight when the connection is cut waits for its operation timeout, then retries.
      retryOptions: {
        maxRetries: 20,
        retryDelayInMs: 50,
        maxRetryDelayInMs: 200,
        timeoutInMs: 3000,
      },
    });
    const seen: string[] = [];
    const receiver = own.createReceiver(name);
    receiver.subscribe(
      {
        processMessage: async (m) => {
          seen.push(m.body as string);
        },
        // Detach and disconnect surface here; the SDK recovers by itself.
        processError: async () => {},
      },
      { autoCompleteMessages: true },
    );
    const sender = own.createSender(name);
    await sender.sendMessages({ body: 'one' });
    await expect.poll(() => seen, { timeout: 10_000 }).toEqual(['one']);
    expect(peer.detachLinks(name)).toBe(1);
    await expect.poll(() => peer.receiverCount(name), { timeout: 10_000 }).toBe(1);
    await sender.sendMessages({ body: 'two' });
    await expect.poll(() => [...new Set(seen)], { timeout: 10_000 }).toEqual(['one', 'two']);
    expect(peer.dropConnections()).toBeGreaterThan(0);
    await sender.sendMessages({ body: 'three' });
    // At least once: a completion lost with the connection redelivers; nothing is lost.
    await expect
      .poll(() => [...new Set(seen)], { timeout: 15_000 })
      .toEqual(['one', 'two', 'three']);
    await receiver.close();
    await own.close();
  });

  it('detaches the links of a deleted queue with not-found, and refuses them until it exists again', async () => {
    const name = queue();
    const codes: string[] = [];
    const receiver = client.createReceiver(name);
    const seen: unknown[] = [];
    receiver.subscribe(
      {
        processMessage: async (m) => void seen.push(m.body),
        processError: async (args) => {
          if (isServiceBusError(args.error)) codes.push(args.error.code);
        },
      },
      { autoCompleteMessages: true },
    );
    await expect.poll(() => peer.receiverCount(name), { timeout: 10_000 }).toBe(1);
    expect(peer.deleteQueue(name)).toBe(true);
    await expect
      .poll(() => codes.includes('MessagingEntityNotFound'), { timeout: 10_000 })
      .toBe(true);
    expect(peer.receiverCount(name)).toBe(0);
    // The SDK keeps retrying the attach; once the queue exists again, receiving resumes.
    peer.createQueue(name);
    await client.createSender(name).sendMessages({ body: 'back' });
    // The SDK's attach retries back off: on a busy machine the next one can be far off.
    await expect.poll(() => seen, { timeout: 50_000 }).toEqual(['back']);
    await receiver.close();
  }, 70_000);

  it('fails the next settlement with MessageLockLost and makes the message available again', async () => {
    const name = queue();
    await client.createSender(name).sendMessages({ body: 'x' });
    const receiver = client.createReceiver(name);
    const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
    peer.failNextSettlements(1);
    const error = await receiver.completeMessage(m as ServiceBusReceivedMessage).catch((e) => e);
    expect(isServiceBusError(error) && error.code).toBe('MessageLockLost');
    const [again] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
    expect(again?.body).toBe('x');
    expect(again?.deliveryCount).toBe(1);
    await receiver.completeMessage(again as ServiceBusReceivedMessage);
    await receiver.close();
  });

  it('publishes to a topic: each subscription gets a copy, forwardTo moves it to a queue', async () => {
    const target = queue();
    peer.createTopic('events.happened');
    peer.createSubscription('events.happened', 'direct');
    peer.createSubscription('events.happened', 'forwarded', {
      forwardTo: target,
      autoDeleteOnIdleMs: 600_000,
    });
    expect(peer.subscriptionOptions('events.happened', 'forwarded')?.autoDeleteOnIdleMs).toBe(
      600_000,
    );
    await client.createSender('events.happened').sendMessages({ body: 'e1' });
    const direct = client.createReceiver('events.happened', 'direct');
    const forwarded = client.createReceiver(target);
    const [a] = await direct.receiveMessages(1, { maxWaitTimeInMs: 5000 });
    const [b] = await forwarded.receiveMessages(1, { maxWaitTimeInMs: 5000 });
    expect([a?.body, b?.body]).toEqual(['e1', 'e1']);
    await direct.completeMessage(a as ServiceBusReceivedMessage);
    await forwarded.completeMessage(b as ServiceBusReceivedMessage);
    await Promise.all([direct.close(), forwarded.close()]);
  });

  it('drops duplicates within the detection window', async () => {
    const name = `q${counter++}`;
    peer.createQueue(name, { duplicateDetectionWindowMs: 60_000 });
    const sender = client.createSender(name);
    await sender.sendMessages({ body: 1, messageId: 'same' });
    await sender.sendMessages({ body: 2, messageId: 'same' });
    expect(peer.messages(name).map((m) => m.body)).toHaveLength(1);
    expect(peer.stats.duplicatesDropped).toBeGreaterThan(0);
  });

  it('answers an unknown entity with MessagingEntityNotFound and a wrong key with UnauthorizedAccess', async () => {
    const missing = await client
      .createSender('does-not-exist')
      .sendMessages({ body: 1 })
      .catch((e) => e);
    expect(isServiceBusError(missing) && missing.code).toBe('MessagingEntityNotFound');
    const wrong = new ServiceBusClient(peer.connectionString.replace('peer-key', 'wrong-key'), {
      retryOptions: { maxRetries: 0 },
    });
    const denied = await wrong
      .createSender(queue())
      .sendMessages({ body: 1 })
      .catch((e) => e);
    expect(isServiceBusError(denied) && denied.code).toBe('UnauthorizedAccess');
    expect(String(denied.message)).not.toContain('wrong-key');
    await wrong.close();
  });
});
