import { ServiceBusClient } from '@azure/service-bus';
import {
  createEndpoint,
  defineMessage,
  type Endpoint,
  Headers,
  MessageTooLargeError,
  silentLogger,
} from '@tidings/core';
import { PACKED_HEADERS, unpackHeaders } from '@tidings/core/transport';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MessagePropertiesTooLargeError } from '../src/index.ts';
import {
  cleanPeer,
  peerTransport,
  type ServiceBusPeer,
  startServiceBusPeer,
} from './support/peer.ts';

// Service Bus refuses a property above 32 KB and properties above 64 KB together; the peer does
// too. The transport refuses such a send itself, and fits a copy for the error queue.
const Work = defineMessage<{ n: number }>('limits.Work');
const wait = { timeout: 20_000, interval: 20 };

let peer: ServiceBusPeer;
let endpoints: Endpoint[] = [];
beforeAll(async () => {
  peer = await startServiceBusPeer({ management: false });
});
afterAll(() => peer.close());
afterEach(async () => {
  await Promise.allSettled(endpoints.map((e) => e.stop()));
  endpoints = [];
  cleanPeer(peer, 'limits-');
});

async function start(name: string, setup: (e: Endpoint) => void = () => {}, sendOnly = false) {
  const endpoint = createEndpoint({
    name,
    transport: peerTransport(peer),
    logger: silentLogger,
    ...(sendOnly ? { sendOnly: true } : {}),
    routes: { [Work.name]: 'limits-Server' },
    recoverability: {
      errorQueue: 'limits-error',
      immediateRetries: 0,
      delayedRetries: { count: 0 },
    },
  });
  setup(endpoint);
  endpoints.push(endpoint);
  await endpoint.start();
  return endpoint;
}

describe('property limits', () => {
  it('refuses a header above 32 KB, and headers above 64 KB together, with a typed error', async () => {
    peer.createQueue('limits-Server');
    const sender = await start('limits-Sender', undefined, true);
    const one = await sender
      .send(Work, { n: 1 }, { headers: { big: 'x'.repeat(33 * 1024) } })
      .catch((e: unknown) => e);
    expect(one).toBeInstanceOf(MessagePropertiesTooLargeError);
    expect((one as MessagePropertiesTooLargeError).code).toBe('TIDINGS_MESSAGE_TOO_LARGE');
    expect((one as MessagePropertiesTooLargeError).header).toBe('big');
    const all = await sender
      .send(
        Work,
        { n: 2 },
        {
          headers: { a: 'a'.repeat(22 * 1024), b: 'b'.repeat(22 * 1024), c: 'c'.repeat(22 * 1024) },
        },
      )
      .catch((e: unknown) => e);
    expect(all).toBeInstanceOf(MessagePropertiesTooLargeError);
    expect((all as MessagePropertiesTooLargeError).header).toBeUndefined();
    expect(peer.messages('limits-Server')).toHaveLength(0);
    // Within both limits it goes.
    await sender.send(
      Work,
      { n: 3 },
      { headers: { a: 'a'.repeat(30 * 1024), b: 'b'.repeat(30 * 1024) } },
    );
    expect(peer.messages('limits-Server')).toHaveLength(1);
  });

  it('moves a message whose headers leave no room for the failure details to the error queue, cut to fit', async () => {
    await start('limits-Server', (e) =>
      e.handle(Work, () => {
        throw new Error(`failed: ${'why '.repeat(2000)}`);
      }),
    );
    // Sent within the limits by another client; the failure headers would push it over them.
    const raw = new ServiceBusClient(peer.connectionString);
    try {
      await raw.createSender('limits-Server').sendMessages({
        body: Buffer.from('{"n":7}'),
        messageId: 'near-the-limit',
        contentType: 'application/json',
        subject: Work.name,
        applicationProperties: { a: 'a'.repeat(31 * 1024), b: 'b'.repeat(31 * 1024) },
      });
    } finally {
      await raw.close();
    }
    await expect.poll(() => peer.messages('limits-error').length, wait).toBe(1);
    const [moved] = peer.messages('limits-error');
    const headers: Record<string, string> = {};
    unpackHeaders(moved?.applicationProperties[PACKED_HEADERS] as string, headers);
    expect(headers[Headers.FailedQueue]).toBe('limits-Server');
    expect(headers[Headers.ExceptionType]).toBe('Error');
    expect(moved?.messageId).toBe('near-the-limit');
    expect(peer.messages('limits-Server')).toHaveLength(0);
    // Moved on its first delivery: no failed attempts before it.
    expect(peer.stats.abandoned).toBe(0);
  });
});

describe('the entity size limit', () => {
  it('refuses a single message above the limit the entity advertises, although maxMessageSizeBytes is larger', async () => {
    peer.createQueue('limits-Server');
    // 1 MiB configured (Premium-sized) against a namespace whose entities take 256 KiB.
    const sender = createEndpoint({
      name: 'limits-Big',
      transport: peerTransport(peer, { maxMessageSizeBytes: 1024 * 1024 }),
      logger: silentLogger,
      sendOnly: true,
      routes: { [Work.name]: 'limits-Server' },
    });
    endpoints.push(sender);
    await sender.start();
    const big = await sender
      .send(Work, { n: 1 })
      .then(() => sender.send(Work, { n: 2, pad: 'y'.repeat(300 * 1024) } as never))
      .catch((e: unknown) => e);
    expect(big).toBeInstanceOf(MessageTooLargeError);
    expect((big as MessageTooLargeError).maxBytes).toBe(256 * 1024);
    expect(peer.messages('limits-Server')).toHaveLength(1);
  });
});
