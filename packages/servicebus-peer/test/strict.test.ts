import {
  isServiceBusError,
  ServiceBusClient,
  type ServiceBusError,
  type ServiceBusReceivedMessage,
} from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { type ServiceBusPeer, startServiceBusPeer } from '../src/index.ts';

// The service's strict behaviours the peer plays: idle links detached, locks kept on detach,
// idle queues deleted under their receivers, and the faults a busy or full namespace answers.
let peer: ServiceBusPeer;
let lenient: ServiceBusPeer;
let client: ServiceBusClient;
let lenientClient: ServiceBusClient;
const wait = { timeout: 10_000, interval: 20 };
const noRetries = { retryOptions: { maxRetries: 0, timeoutInMs: 5_000 } };

beforeAll(async () => {
  peer = await startServiceBusPeer({ management: false, linkIdleTimeoutMs: 2_000 });
  lenient = await startServiceBusPeer({ management: false, locksOnDetach: 'release' });
  client = new ServiceBusClient(peer.connectionString, noRetries);
  lenientClient = new ServiceBusClient(lenient.connectionString, noRetries);
});
afterAll(async () => {
  await client.close();
  await lenientClient.close();
  await peer.close();
  await lenient.close();
});

/**
 * A client of its own for a test that waits on the peer's sweep (idle links, lock expiry, idle
 * queues): a link the SDK is still retrying after such a test must not hold up the next one.
 * Closing is bounded: the SDK can wait long for the detach of a link the peer already dropped.
 */
async function withOwnClient(test: (own: ServiceBusClient) => Promise<void>): Promise<void> {
  const own = new ServiceBusClient(peer.connectionString, noRetries);
  try {
    await test(own);
  } finally {
    await bounded(own.close());
  }
}

/** Waits for a close at most `ms`; what it leaves behind goes with its client. */
const bounded = (closing: Promise<unknown>, ms = 5_000) =>
  Promise.race([
    closing.catch(() => {}),
    new Promise((resolve) => setTimeout(resolve, ms).unref()),
  ]);

const codeOf = (operation: Promise<unknown>) =>
  operation.then(
    () => 'ok',
    (error: unknown) => (isServiceBusError(error) ? error.code : String(error)),
  );

describe('servicebus peer, strict', () => {
  // Many steps, each waiting on the SDK, whose attach retries back off: room for a slow run, and
  // the steps' times printed if it fails.
  it(
    'detaches idle links with detach-forced (IdleTimerExpired); the SDK attaches again',
    () =>
      withOwnClient(async (client) => {
        const started = Date.now();
        const steps: string[] = [];
        const step = (what: string) => steps.push(`${Date.now() - started} ms: ${what}`);
        onTestFailed(() => console.error('[strict] steps:', steps));
        peer.createQueue('idle');
        const errors: ServiceBusError[] = [];
        const received: unknown[] = [];
        const receiver = client.createReceiver('idle');
        const subscription = receiver.subscribe({
          processMessage: async (message) => {
            received.push(message.body);
            await receiver.completeMessage(message);
          },
          processError: async (args) => {
            errors.push(args.error as ServiceBusError);
          },
        });
        try {
          await expect.poll(() => peer.receiverCount('idle'), wait).toBe(1);
          step('attached');
          // The forced detach, among whatever else the SDK reports while it attaches again.
          await expect
            .poll(
              () => errors.some((e) => /force detached.*IdleTimerExpired/.test(e.message)),
              wait,
            )
            .toBe(true);
          step('detached for idling');
          // Attached again by the SDK, and delivering.
          await expect.poll(() => peer.receiverCount('idle'), wait).toBe(1);
          step('attached again');
          const sender = client.createSender('idle');
          await sender.sendMessages({ body: 'after' });
          step('sent');
          expect(peer.senderCount('idle')).toBe(1);
          await expect.poll(() => received, wait).toEqual(['after']);
          step('received');
          // The sender link, idle too, goes the same way.
          await expect.poll(() => peer.senderCount('idle'), wait).toBe(0);
          step('sender detached for idling');
          // The SDK can still hold the detached link for a moment, and a send on it then times out:
          // a sender made afresh attaches a new link.
          // On a busy machine the new link can itself sit idle past the timeout before its send:
          // a few fresh senders, each a new link.
          await sender.sendMessages({ body: 'again' }).catch(async () => {
            step('send on the detached link failed');
            await sender.close();
            for (let attempt = 1; ; attempt++) {
              const fresh = client.createSender('idle');
              try {
                await fresh.sendMessages({ body: 'again' });
                return;
              } catch (error) {
                step(`fresh sender ${attempt} failed`);
                await fresh.close();
                if (attempt === 3) throw error;
              }
            }
          });
          step('sent again');
          await expect.poll(() => received.includes('again'), wait).toBe(true);
          expect(received[0]).toBe('after');
        } catch (failure) {
          console.error(
            '[strict] the SDK reported:',
            errors.map((e) => `${e.code}: ${e.message}`),
          );
          throw failure;
        } finally {
          await bounded(subscription.close());
          await bounded(receiver.close());
        }
      }),
    90_000,
  );

  it('keeps the locks of a detached link until they expire; settling by lock token still works', () =>
    withOwnClient(async (client) => {
      peer.createQueue('locks', { lockDurationMs: 1_500 });
      await client.createSender('locks').sendMessages([
        { body: 1, messageId: 'one' },
        { body: 2, messageId: 'two' },
      ]);
      // No renewal: the lock is left to expire.
      const receiver = client.createReceiver('locks', { maxAutoLockRenewalDurationInMs: 0 });
      const [one, two] = (await receiver.receiveMessages(2, { maxWaitTimeInMs: 5_000 })) as [
        ServiceBusReceivedMessage,
        ServiceBusReceivedMessage,
      ];
      expect(peer.detachLinks('locks')).toBe(1);
      expect(peer.lockedCount('locks')).toBe(2);
      expect(peer.messages('locks')).toHaveLength(0);
      // The link is gone: the SDK settles over $management by lock token.
      await receiver.completeMessage(one);
      expect(peer.lockedCount('locks')).toBe(1);
      // The other comes back once its lock expires, counted as a delivery.
      await expect
        .poll(() => peer.messages('locks').map((m) => m.messageId), wait)
        .toEqual(['two']);
      expect(peer.messages('locks')[0]?.deliveryCount).toBe(1);
      expect(await codeOf(receiver.completeMessage(two))).toBe('MessageLockLost');
      await bounded(receiver.close());
    }));

  it('in the lenient mode, releases the locks of a detached link at once', async () => {
    lenient.createQueue('released');
    await lenientClient.createSender('released').sendMessages({ body: 1 });
    const receiver = lenientClient.createReceiver('released');
    await receiver.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
    expect(lenient.detachLinks('released')).toBe(1);
    expect(lenient.lockedCount('released')).toBe(0);
    expect(lenient.messages('released')).toHaveLength(1);
    await receiver.close();
  });

  it('deletes a queue idle for autoDeleteOnIdle although a receiver is attached to it', () =>
    withOwnClient(async (client) => {
      peer.createQueue('auto', { autoDeleteOnIdleMs: 1_500 });
      const errors: string[] = [];
      const receiver = client.createReceiver('auto');
      const subscription = receiver.subscribe({
        processMessage: async () => {},
        processError: async (args) => {
          errors.push(isServiceBusError(args.error) ? args.error.code : String(args.error));
        },
      });
      try {
        await expect.poll(() => peer.receiverCount('auto'), wait).toBe(1);
        await expect.poll(() => peer.queueExists('auto'), wait).toBe(false);
        await expect.poll(() => errors, wait).toContain('MessagingEntityNotFound');
      } catch (failure) {
        console.error('[strict] the SDK reported:', errors);
        throw failure;
      } finally {
        await bounded(subscription.close());
        await bounded(receiver.close());
      }
    }));

  it('delivers no more than the credit the receiver granted', async () => {
    peer.createQueue('credit');
    await client
      .createSender('credit')
      .sendMessages(Array.from({ length: 20 }, (_, n) => ({ body: n })));
    const receiver = client.createReceiver('credit');
    let handed = 0;
    const subscription = receiver.subscribe(
      {
        processMessage: async () => {
          handed++;
          await new Promise(() => {});
        },
        processError: async () => {},
      },
      { maxConcurrentCalls: 4, autoCompleteMessages: false },
    );
    try {
      await expect.poll(() => handed, wait).toBe(4);
      // Only what was granted is locked; the rest waits, free for another receiver.
      expect(peer.lockedCount('credit')).toBe(4);
      expect(peer.messages('credit')).toHaveLength(16);
    } finally {
      await subscription.close();
      await receiver.close();
    }
  });

  it('refuses sends as a busy or full namespace does, and a disabled entity', async () => {
    peer.createQueue('faulty');
    const sender = client.createSender('faulty');
    peer.refuseNextSends(1, 'com.microsoft:server-busy');
    expect(await codeOf(sender.sendMessages({ body: 1 }))).toBe('ServiceBusy');
    peer.refuseNextSends(1, 'amqp:resource-limit-exceeded');
    expect(await codeOf(sender.sendMessages({ body: 2 }))).toBe('QuotaExceeded');
    expect(await codeOf(sender.sendMessages({ body: 3, messageId: 'three' }))).toBe('ok');
    peer.disableEntity('faulty');
    expect(await codeOf(client.createSender('faulty').sendMessages({ body: 4 }))).toBe(
      'MessagingEntityDisabled',
    );
    expect(
      await codeOf(client.createReceiver('faulty').receiveMessages(1, { maxWaitTimeInMs: 500 })),
    ).toBe('MessagingEntityDisabled');
    peer.enableEntity('faulty');
    expect(await codeOf(sender.sendMessages({ body: 5, messageId: 'five' }))).toBe('ok');
    expect(peer.messages('faulty').map((m) => m.messageId)).toEqual(['three', 'five']);
  });
});
