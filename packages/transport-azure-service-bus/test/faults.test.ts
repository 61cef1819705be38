import { randomBytes } from 'node:crypto';
import { ServiceBusClient } from '@azure/service-bus';
import {
  createEndpoint,
  defineMessage,
  type Endpoint,
  Headers,
  returnToSourceQueue,
  silentLogger,
} from '@tidings/core';
import { PACKED_HEADERS, unpackHeaders } from '@tidings/core/transport';
import { recordingLogger } from '@tidings/transport-tests';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type {
  AzureServiceBusTransport,
  AzureServiceBusTransportOptions,
  TopologyInstaller,
} from '../src/index.ts';
import {
  cleanPeer,
  peerInstaller,
  peerTransport,
  type ServiceBusPeer,
  startServiceBusPeer,
} from './support/peer.ts';

/** The bus headers on a stored message: the packed application property unfolded (ADR 8). */
/** Bus headers as a receiver reads them: `tidings.*` properties of their own, then the packed one. */
function busHeadersOf(properties: Record<string, unknown>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(properties)) {
    if (name !== PACKED_HEADERS && name.startsWith('tidings.')) headers[name] = String(value);
  }
  unpackHeaders(properties[PACKED_HEADERS] as string | undefined, headers);
  return headers;
}

const Work = defineMessage<{ n: number }>('faults.Work');
const Ping = defineMessage<{ n: number }>('faults.Ping');
const Pong = defineMessage<{ n: number }>('faults.Pong');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const wait = { timeout: 40_000, interval: 20 };
/**
 * Recovering from a cut: the SDK re-attaches with exponential backoff capped at 30 s
 * (`maxRetryDelayInMs`), and under load an attempt or two can fail before one succeeds.
 */
const recoveryWait = { timeout: 75_000, interval: 20 };
const recoveryTestTimeout = 100_000;

let peer: ServiceBusPeer;
let prefix: string;
let endpoints: Endpoint[] = [];
let transports: AzureServiceBusTransport[] = [];

afterEach(async () => {
  await Promise.allSettled(endpoints.map((e) => e.stop()));
  cleanPeer(peer, prefix);
  endpoints = [];
  transports = [];
});

const name = (suffix: string) => `${prefix}-${suffix}`;
const errorQueue = () => name('error');

/** An endpoint on a transport of its own, as a separate process would have. */
async function start(
  suffix: string,
  setup: (e: Endpoint) => void,
  options: Record<string, unknown> = {},
  transportOptions: Partial<AzureServiceBusTransportOptions> = {},
): Promise<{ endpoint: Endpoint; transport: AzureServiceBusTransport }> {
  const transport = peerTransport(peer, { lockDurationMs: 5_000, ...transportOptions });
  transports.push(transport);
  const endpoint = createEndpoint({
    name: name(suffix),
    transport,
    logger: silentLogger,
    recoverability: { errorQueue: errorQueue(), immediateRetries: 0, delayedRetries: { count: 0 } },
    routes: { [Work.name]: name('Server'), [Ping.name]: name('Server') },
    ...options,
  });
  setup(endpoint);
  await endpoint.start();
  endpoints.push(endpoint);
  return { endpoint, transport };
}

/** Counts handlings per message number: nothing lost means every number seen; repeats are duplicates. */
function tally() {
  const seen = new Map<number, number>();
  return {
    seen,
    add: (n: number) => void seen.set(n, (seen.get(n) ?? 0) + 1),
    duplicates: () => [...seen.values()].reduce((sum, times) => sum + times - 1, 0),
  };
}

/**
 * The faults that take links away, run both ways a detached link's locks can go: kept until they
 * expire, as Service Bus keeps them (settling by lock token still works), and released at once
 * (the peer's lenient mode). Queues lock for 5 s, Service Bus's minimum, so a message whose lock
 * is kept comes back within a test's patience.
 */
describe.each(['keep', 'release'] as const)(
  'link loss against the test peer (locks on detach: %s)',
  (locksOnDetach) => {
    beforeAll(async () => {
      peer = await startServiceBusPeer({ locksOnDetach });
    });
    afterAll(() => peer.close());
    it.each([
      ['the peer drops every connection', () => peer.dropConnections()],
      [
        "the endpoint queue's receive link is detached by force",
        () => peer.detachLinks(name('Server')),
      ],
    ])(
      'during a stream, %s: nothing is lost, duplicates are counted',
      async (_label, fault) => {
        prefix = `f${randomBytes(3).toString('hex')}`;
        const count = tally();
        const server = await start(
          'Server',
          (e) =>
            e.handle(Work, async (p) => {
              await sleep(2);
              count.add(p.n);
            }),
          { concurrency: 8 },
        );
        const { endpoint: sender } = await start('Client', () => {}, { sendOnly: true });
        const total = 300;
        await Promise.all(Array.from({ length: total }, (_, n) => sender.send(Work, { n })));
        await expect.poll(() => count.seen.size, wait).toBeGreaterThan(30);
        expect(fault()).toBeGreaterThan(0);
        await expect.poll(() => count.seen.size, recoveryWait).toBe(total);
        // Redeliveries come from settlements the cut interrupted; none are expected otherwise.
        expect(count.duplicates()).toBeLessThanOrEqual(
          server.transport.stats.settlementFailures + 16,
        );
        expect(server.endpoint.stats.movedToErrorQueue).toBe(0);
      },
      recoveryTestTimeout,
    );

    it(
      'the peer drops connections while requests are in flight: every request gets its reply',
      async () => {
        prefix = `f${randomBytes(3).toString('hex')}`;
        await start('Server', (e) =>
          e.handle(Ping, async (p, ctx) => {
            await sleep(5);
            await ctx.reply(Pong, { n: p.n });
          }),
        );
        const { endpoint: client } = await start('Client', () => {}, { instanceId: 'c1' });
        // Links up first: the cut hits requests in flight, not the SDK's first connection (see README).
        await client.request(Ping, { n: -1 }, { expect: Pong });
        const total = 200;
        const replies = Promise.all(
          Array.from({ length: total }, (_, n) => client.request(Ping, { n }, { expect: Pong })),
        );
        await sleep(50);
        expect(peer.dropConnections()).toBeGreaterThan(0);
        const got = await replies;
        expect(got.map((r) => r.n)).toEqual(Array.from({ length: total }, (_, n) => n));
        expect(client.stats.pendingRequests).toBe(0);
      },
      recoveryTestTimeout,
    );

    // Needs the detach to release the held message, so the new link gets it while the handler
    // still runs; with the lock kept (and renewed while the handler runs) it is not delivered again.
    it.skipIf(locksOnDetach === 'keep')(
      'stopping with a message waiting for a slot hands it back at once: another instance gets it while a handler still runs, no failed abandon',
      async () => {
        prefix = `f${randomBytes(3).toString('hex')}`;
        const logger = recordingLogger();
        let release: () => void = () => {};
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        const handledByA: number[] = [];
        const handledByB: number[] = [];
        const a = await start(
          'Server',
          (e) =>
            e.handle(Work, async (p) => {
              handledByA.push(p.n);
              if (handledByA.length === 1) await held;
            }),
          // Stopping waits for the held handler for longer than the test runs.
          { concurrency: 1, logger, stopTimeoutMs: 10 * recoveryTestTimeout },
        );
        const { endpoint: sender } = await start('Client', () => {}, { sendOnly: true });
        const deliveries = peer.stats.deliveries;
        await sender.send(Work, { n: 0 });
        await expect.poll(() => handledByA, wait).toEqual([0]);
        // The SDK re-attaches with fresh credit while the handler still runs: the peer hands the
        // released message to the new link, and it waits for the slot the handler holds.
        expect(peer.detachLinks(name('Server'))).toBe(1);
        await expect.poll(() => peer.stats.deliveries - deliveries, recoveryWait).toBe(2);
        expect(peer.lockedCount(name('Server'))).toBe(1);
        await start('Server', (e) => e.handle(Work, (p) => void handledByB.push(p.n)));
        const stopped = a.endpoint.stop();
        try {
          await expect.poll(() => handledByB, wait).toEqual([0]);
          expect(handledByA).toEqual([0]);
        } finally {
          release();
          await stopped;
        }
        expect(logger.lines.filter((line) => line.includes('Could not abandon'))).toEqual([]);
      },
      recoveryTestTimeout,
    );

    it(
      'a receiver whose link stays down after a link error is replaced while a handler still holds a message; the old one is closed once that message is settled',
      async () => {
        prefix = `f${randomBytes(3).toString('hex')}`;
        let release: () => void = () => {};
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        const handled: number[] = [];
        const server = await start(
          'Server',
          (e) =>
            e.handle(Work, async (p) => {
              handled.push(p.n);
              if (p.n === 0) await held;
            }),
          // A slot to spare: the new receiver's message runs while the first is still held.
          { concurrency: 2 },
          // One delivery only: a message the detach releases (lenient mode) is dead-lettered, not
          // delivered again, so nothing arrives after the link error.
          { maxDeliveryCount: 1 },
        );
        const queue = name('Server');
        const { endpoint: sender } = await start('Client', () => {}, { sendOnly: true });
        try {
          await sender.send(Work, { n: 0 });
          await expect.poll(() => handled, wait).toEqual([0]);
          // Disabled: its links are detached and every attach refused, so the SDK cannot get the
          // link back: a stall, not a quiet queue.
          peer.disableEntity(queue);
          await expect
            .poll(() => server.transport.stats.receiverRestarts, wait)
            .toBeGreaterThanOrEqual(1);
          peer.enableEntity(queue);
          await sender.send(Work, { n: 1 });
          await expect.poll(() => handled, wait).toEqual([0, 1]);
        } finally {
          release();
        }
        await expect.poll(() => peer.receiverCount(queue), wait).toBe(1);
        // A kept lock is still held (and renewed): the message is completed by lock token. A
        // released one was dead-lettered (one delivery only).
        await expect
          .poll(() => peer.messages(`${queue}/$DeadLetterQueue`).length, wait)
          .toBe(locksOnDetach === 'keep' ? 0 : 1);
        await expect.poll(() => peer.lockedCount(queue), wait).toBe(0);
        expect(peer.messages(queue)).toHaveLength(0);
      },
      recoveryTestTimeout,
    );
  },
);

describe('faults against the test peer', () => {
  beforeAll(async () => {
    peer = await startServiceBusPeer();
  });
  afterAll(() => peer.close());

  it('settlements that fail with lock lost: the messages come again, nothing is lost', async () => {
    prefix = `f${randomBytes(3).toString('hex')}`;
    const count = tally();
    const server = await start('Server', (e) => e.handle(Work, (p) => count.add(p.n)));
    const { endpoint: sender } = await start('Client', () => {}, { sendOnly: true });
    peer.failNextSettlements(3);
    await Promise.all(Array.from({ length: 20 }, (_, n) => sender.send(Work, { n })));
    await expect.poll(() => count.seen.size, wait).toBe(20);
    await expect.poll(() => count.duplicates(), wait).toBe(3);
    expect(server.transport.stats.settlementFailures).toBe(3);
  });

  it('a handler that always throws sends the message to the error queue; the endpoint keeps going', async () => {
    prefix = `f${randomBytes(3).toString('hex')}`;
    const handled: number[] = [];
    const server = await start('Server', (e) =>
      e.handle(Work, (p) => {
        if (p.n === 1) throw new Error('always fails');
        handled.push(p.n);
      }),
    );
    const { endpoint: sender } = await start('Client', () => {}, { sendOnly: true });
    await sender.send(Work, { n: 1 });
    await sender.send(Work, { n: 2 });
    await expect.poll(() => peer.messages(errorQueue()).length, wait).toBe(1);
    await expect.poll(() => handled, wait).toEqual([2]);
    const [failed] = peer.messages(errorQueue());
    const h = busHeadersOf(failed?.applicationProperties ?? {});
    expect(h[Headers.ExceptionMessage]).toBe('always fails');
    expect(h[Headers.FailedQueue]).toBe(name('Server'));
    // Counted once the send is acknowledged, which may come after the peer has stored it.
    await expect.poll(() => server.endpoint.stats.movedToErrorQueue, wait).toBe(1);
  });

  it('a message id longer than Service Bus takes is sent, handled and moved with that id', async () => {
    prefix = `f${randomBytes(3).toString('hex')}`;
    const long = `${prefix}-${'x'.repeat(200)}`;
    const seen: string[] = [];
    const server = await start('Server', (e) =>
      e.handle(Work, (_p, ctx) => {
        seen.push(ctx.messageId);
        throw new Error('to the error queue');
      }),
    );
    const { endpoint: sender } = await start('Client', () => {}, { sendOnly: true });
    await sender.send(Work, { n: 1 }, { messageId: long });
    await expect.poll(() => peer.messages(errorQueue()).length, wait).toBe(1);
    expect(seen).toEqual([long]);
    expect(peer.messages(errorQueue())[0]?.applicationProperties[Headers.MessageId]).toBe(long);
    // Counted once the send is acknowledged, which may come after the peer has stored it.
    await expect.poll(() => server.endpoint.stats.movedToErrorQueue, wait).toBe(1);
  });

  it(
    'an instance queue deleted under a running endpoint (auto-delete after a long outage) is created again; replies arrive',
    async () => {
      prefix = `f${randomBytes(3).toString('hex')}`;
      await start('Server', (e) => e.handle(Ping, (p, ctx) => ctx.reply(Pong, { n: p.n })));
      const { endpoint: client, transport } = await start('Client', () => {}, { instanceId: 'c1' });
      expect(await client.request(Ping, { n: 1 }, { expect: Pong })).toEqual({ n: 1 });
      const instanceQueue = `${name('Client')}.c1`;
      expect(peer.deleteQueue(instanceQueue)).toBe(true);
      await expect.poll(() => peer.queueExists(instanceQueue), wait).toBe(true);
      expect(peer.queueOptions(instanceQueue)?.autoDeleteOnIdleMs).toBeGreaterThan(0);
      await expect
        .poll(
          () => client.request(Ping, { n: 2 }, { expect: Pong, timeoutMs: 5_000 }),
          recoveryWait,
        )
        .toEqual({ n: 2 });
      expect(transport.stats.queuesRecreated).toBe(1);
    },
    recoveryTestTimeout,
  );

  it(
    'an installer whose ensureQueue throws synchronously while a deleted instance queue is created again is asked again',
    async () => {
      prefix = `f${randomBytes(3).toString('hex')}`;
      await start('Server', (e) => e.handle(Ping, (p, ctx) => ctx.reply(Pong, { n: p.n })));
      const base = peerInstaller(peer);
      let throwOnce = false;
      const installer: TopologyInstaller = {
        ...base,
        // Not async: the error is thrown at the call, not returned as a rejected promise.
        ensureQueue: (queue, settings) => {
          if (throwOnce) {
            throwOnce = false;
            throw new Error('management endpoint unreachable');
          }
          return base.ensureQueue(queue, settings);
        },
      };
      const { endpoint: client, transport } = await start(
        'Client',
        () => {},
        { instanceId: 'c1' },
        { installer },
      );
      expect(await client.request(Ping, { n: 1 }, { expect: Pong })).toEqual({ n: 1 });
      const instanceQueue = `${name('Client')}.c1`;
      throwOnce = true;
      expect(peer.deleteQueue(instanceQueue)).toBe(true);
      await expect.poll(() => peer.queueExists(instanceQueue), recoveryWait).toBe(true);
      expect(throwOnce).toBe(false);
      await expect
        .poll(
          () => client.request(Ping, { n: 2 }, { expect: Pong, timeoutMs: 5_000 }),
          recoveryWait,
        )
        .toEqual({ n: 2 });
      expect(transport.stats.queuesRecreated).toBe(1);
    },
    recoveryTestTimeout,
  );

  it('a failing message close to the size limit still reaches the error queue, its stack cut', async () => {
    prefix = `f${randomBytes(3).toString('hex')}`;
    const Big = defineMessage<{ text: string }>('faults.Big');
    const server = await start('Server', (e) =>
      e.handle(Big, () => {
        throw new Error('x'.repeat(4_000));
      }),
    );
    const { endpoint: sender } = await start('Client', () => {}, {
      sendOnly: true,
      routes: { [Big.name]: name('Server') },
    });
    // Under the 256 KB limit by less than the failure headers would add in full.
    await sender.send(Big, { text: 'y'.repeat(250 * 1024) });
    await expect.poll(() => peer.messages(errorQueue()).length, wait).toBe(1);
    const h = busHeadersOf(peer.messages(errorQueue())[0]?.applicationProperties ?? {});
    expect(h[Headers.FailedQueue]).toBe(name('Server'));
    expect(h[Headers.ExceptionStack]).toBeUndefined();
    expect(h[Headers.ExceptionMessage]?.endsWith('…')).toBe(true);
    // Counted once the send is acknowledged, which may come after the peer has stored it.
    await expect.poll(() => server.endpoint.stats.movedToErrorQueue, wait).toBe(1);
  });

  /**
   * A server reading a queue with duplicate detection, no immediate retries and `delayedRetries`
   * delayed ones, whose handler fails its first `failures` attempts; and a send-only sender.
   */
  async function failingBehindDuplicateDetection(delayedRetries: number, failures: number) {
    prefix = `f${randomBytes(3).toString('hex')}`;
    const attempts: string[] = [];
    const server = createEndpoint({
      name: name('Server'),
      transport: peerTransport(peer, { duplicateDetectionWindowMs: 60_000 }),
      logger: silentLogger,
      recoverability: {
        errorQueue: errorQueue(),
        immediateRetries: 0,
        delayedRetries: { count: delayedRetries, delayMs: 100 },
      },
    });
    endpoints.push(server);
    server.handle(Work, (_p, ctx) => {
      attempts.push(ctx.messageId);
      if (attempts.length <= failures) throw new Error('not yet');
    });
    await server.start();
    const { endpoint: sender } = await start('Client', () => {}, { sendOnly: true });
    return { server, sender, attempts };
  }

  it('with duplicate detection on, a delayed retry is delivered, keeping its message id', async () => {
    const { server, sender, attempts } = await failingBehindDuplicateDetection(2, 2);
    await sender.send(Work, { n: 1 }, { messageId: `${prefix}-once` });
    // The first attempt and two delayed retries, each a new send to a queue that drops repeats.
    await expect
      .poll(() => attempts, wait)
      .toEqual([`${prefix}-once`, `${prefix}-once`, `${prefix}-once`]);
    expect(server.stats.delayedRetries).toBe(2);
    expect(peer.messages(errorQueue())).toEqual([]);
  });

  it('with duplicate detection on, a message returned from the error queue is delivered, and so are its retries', async () => {
    const { sender, attempts } = await failingBehindDuplicateDetection(1, 3);
    await sender.send(Work, { n: 1 }, { messageId: `${prefix}-back` });
    // The first attempt and its delayed retry fail: the error queue has it.
    await expect.poll(() => peer.messages(errorQueue()).length, wait).toBe(1);

    // Returned well within the window: a new send of the same message to a queue that drops
    // repeats. It fails once more, and its delayed retry (the same round as before) is handled.
    const result = await returnToSourceQueue({
      transport: peerTransport(peer),
      errorQueue: errorQueue(),
      idleMs: 1_000,
    });
    expect(result).toEqual({ returned: 1, kept: 0 });
    await expect.poll(() => attempts.length, wait).toBe(4);
    expect(new Set(attempts)).toEqual(new Set([`${prefix}-back`]));
    expect(peer.messages(errorQueue())).toEqual([]);
  });

  it.each([
    ['the native dead-letter queue, with the reason (default)', 'dead-letter'],
    ['the error queue', 'error-queue'],
  ] as const)(
    'messages sent with the raw SDK: unreadable ones go to %s, a well-formed one is handled',
    async (_where, unreadableMessages) => {
      prefix = `f${randomBytes(3).toString('hex')}`;
      const handled: Array<{ n: number; correlationId: string; sentAt: string | undefined }> = [];
      const server = await start(
        'Server',
        (e) =>
          e.handle(
            Work,
            (p, ctx) =>
              void handled.push({
                n: p.n,
                correlationId: ctx.correlationId,
                sentAt: ctx.headers.sentAt,
              }),
          ),
        unreadableMessages === 'error-queue'
          ? { recoverability: { errorQueue: errorQueue(), unreadableMessages } }
          : {},
      );
      const raw = new ServiceBusClient(peer.connectionString);
      try {
        const rawSender = raw.createSender(name('Server'));
        await rawSender.sendMessages([
          // Not JSON.
          {
            body: Buffer.from('{"n": '),
            messageId: 'bad-json',
            applicationProperties: { [Headers.MessageType]: Work.name },
          },
          // No message type at all: a message from something that is not a Tidings sender.
          { body: { n: 2 }, messageId: 'no-type' },
          // Packed bus headers that are not a JSON object.
          {
            body: Buffer.from('{"n":4}'),
            messageId: 'bad-packed',
            subject: Work.name,
            applicationProperties: { [PACKED_HEADERS]: '{"intent": ' },
          },
          // Another language's service: type and content type as properties, the rest native.
          {
            body: Buffer.from('{"n":3}'),
            messageId: 'interop',
            correlationId: 'from-elsewhere',
            contentType: 'application/json',
            // A date property arrives as ISO 8601 text, not as the SDK's default epoch number.
            applicationProperties: { [Headers.MessageType]: Work.name, sentAt: new Date(0) },
          },
        ]);
        // An application property that cannot become text: a map whose `toString` is a number.
        await rawSender.sendMessages({
          body: Buffer.from('{"n":5}'),
          bodyType: 'data',
          properties: { messageId: 'odd-property' },
          applicationProperties: {
            [Headers.MessageType]: Work.name,
            odd: { toString: 1 } as unknown as string,
          },
        });
      } finally {
        await raw.close();
      }
      const where =
        unreadableMessages === 'dead-letter' ? `${name('Server')}/$DeadLetterQueue` : errorQueue();
      const reasonOf = (m: { applicationProperties: Record<string, unknown> }) =>
        unreadableMessages === 'dead-letter'
          ? m.applicationProperties.DeadLetterReason
          : busHeadersOf(m.applicationProperties)[Headers.ExceptionCode];
      await expect.poll(() => peer.messages(where).length, wait).toBe(4);
      await expect
        .poll(() => handled, wait)
        .toEqual([{ n: 3, correlationId: 'from-elsewhere', sentAt: '1970-01-01T00:00:00.000Z' }]);
      expect(
        Object.fromEntries(peer.messages(where).map((m) => [m.messageId, reasonOf(m)])),
      ).toEqual({
        'bad-json': 'TIDINGS_DESERIALIZATION',
        'no-type': 'TIDINGS_MALFORMED_MESSAGE',
        'bad-packed': 'TIDINGS_MALFORMED_MESSAGE',
        'odd-property': 'TIDINGS_MALFORMED_MESSAGE',
      });
      expect(server.endpoint.stats.deadLettered).toBe(unreadableMessages === 'dead-letter' ? 4 : 0);
    },
  );
});
