import { isServiceBusError, ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServiceBusPeer, startServiceBusPeer } from '../src/index.ts';

// Service Bus's limits on what a sender may transfer, as the SDK meets them.
let peer: ServiceBusPeer;
let client: ServiceBusClient;

beforeAll(async () => {
  peer = await startServiceBusPeer({ management: false });
  client = new ServiceBusClient(peer.connectionString, { retryOptions: { maxRetries: 0 } });
});
afterAll(async () => {
  await client.close();
  await peer.close();
});

const refusal = (operation: Promise<unknown>) =>
  operation.then(
    () => undefined,
    (error: unknown) => error as { code?: string; message?: string },
  );

describe('servicebus peer limits', () => {
  it('refuses a single send above the advertised max_message_size (the SDK checks only batches)', async () => {
    peer.createQueue('big');
    const sender = client.createSender('big');
    const error = await refusal(sender.sendMessages({ body: Buffer.alloc(257 * 1024) }));
    expect(isServiceBusError(error)).toBe(true);
    expect(error?.code).toBe('MessageSizeExceeded');
    expect(peer.messages('big')).toHaveLength(0);
    // Just under the limit is fine.
    await sender.sendMessages({ body: Buffer.alloc(250 * 1024) });
    expect(peer.messages('big')).toHaveLength(1);
  });

  it('refuses a property above 32 KB and properties above 64 KB together', async () => {
    peer.createQueue('props');
    const sender = client.createSender('props');
    const one = await refusal(
      sender.sendMessages({ body: 'x', applicationProperties: { big: 'a'.repeat(33 * 1024) } }),
    );
    expect(isServiceBusError(one)).toBe(true);
    expect(one?.message).toMatch(/'big' is \d+ bytes; a property may take at most 32768/);
    const many = await refusal(
      sender.sendMessages({
        body: 'x',
        applicationProperties: {
          a: 'a'.repeat(22 * 1024),
          b: 'b'.repeat(22 * 1024),
          c: 'c'.repeat(22 * 1024),
        },
      }),
    );
    expect(many?.message).toMatch(/together they may take at most 65536/);
    // Refused in a batch too: the whole transfer.
    const batch = await sender.createMessageBatch();
    batch.tryAddMessage({ body: 'ok' });
    batch.tryAddMessage({ body: 'x', applicationProperties: { big: 'a'.repeat(33 * 1024) } });
    expect(isServiceBusError(await refusal(sender.sendMessages(batch)))).toBe(true);
    expect(peer.messages('props')).toHaveLength(0);

    await sender.sendMessages({
      body: 'x',
      applicationProperties: { a: 'a'.repeat(31 * 1024), b: 'b'.repeat(31 * 1024) },
    });
    expect(peer.messages('props')).toHaveLength(1);
  });
});
