import {
  createEndpoint,
  DestinationNotFoundError,
  defineMessage,
  type Endpoint,
  Headers,
  silentLogger,
} from '@tidings/core';
import { PACKED_HEADERS } from '@tidings/core/transport';
import { recordingLogger } from '@tidings/transport-tests';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import { headersFromAmqp } from '../src/rabbitmq-headers.ts';
import { brokerUrl, deleteTopology, rawConnection } from './broker.ts';
import { disposeEndpoints, pool, sleep, uniquePrefix } from './helpers.ts';
import { type BrokerProxy, startTcpProxy } from './tcp-proxy.ts';

const Work = defineMessage<{ n: number }>('rmqfault.Work');
const Ping = defineMessage<{ n: number }>('rmqfault.Ping');
const Pong = defineMessage<{ n: number }>('rmqfault.Pong');
const Noted = defineMessage<{ n: number }>('rmqfault.Noted');

const wait = { timeout: 60_000, interval: 50 };

// Longer than `wait`, so a recovery poll can use all of it before the test times out.
describe('rabbitmq faults', { timeout: 90_000 }, () => {
  const endpoints: Endpoint[] = [];
  const queues: string[] = [];
  let proxy: BrokerProxy | undefined;

  afterEach(async () => {
    await disposeEndpoints(endpoints.splice(0), queues.splice(0));
    await proxy?.close();
    proxy = undefined;
  });
  // Every handled type got a fanout exchange.
  afterAll(() => deleteTopology([], [Work.name, Ping.name, Pong.name, Noted.name]));

  const transportVia = (url: string) =>
    createRabbitMqTransport({ url, reconnectInitialDelayMs: 50, reconnectMaxDelayMs: 1_000 });

  const start = async (
    name: string,
    url: string,
    options: Partial<Parameters<typeof createEndpoint>[0]> = {},
    setup?: (endpoint: Endpoint) => void,
  ) => {
    const endpoint = createEndpoint({
      name,
      transport: transportVia(url),
      logger: silentLogger,
      ...options,
    });
    setup?.(endpoint);
    endpoints.push(endpoint);
    await endpoint.start();
    return endpoint;
  };

  it('a connection cut during a 5,000-message stream loses nothing', async () => {
    proxy = await startTcpProxy(brokerUrl);
    const prefix = uniquePrefix('stream');
    const errorQueue = `${prefix}-error`;
    queues.push(errorQueue);
    const seen = new Map<number, number>();
    const logger = recordingLogger();
    await start(
      `${prefix}-Server`,
      proxy.url,
      { concurrency: 32, logger, recoverability: { errorQueue } },
      (e) => e.handle(Work, (p) => void seen.set(p.n, (seen.get(p.n) ?? 0) + 1)),
    );
    const sender = await start(`${prefix}-Client`, proxy.url, {
      logger,
      sendOnly: true,
      routes: { [Work.name]: `${prefix}-Server` },
      recoverability: { errorQueue },
    });
    const total = 5_000;
    let sent = 0;
    const sending = pool(total, 100, async (n) => {
      await sender.send(Work, { n });
      sent++;
    });
    await expect.poll(() => sent, wait).toBeGreaterThan(1_500);
    const connectionsBefore = proxy.connections;
    const sentAtCut = sent;
    proxy.cut();
    await sending;
    await expect.poll(() => seen.size, wait).toBe(total);
    const duplicates = [...seen.values()].reduce((sum, times) => sum + times - 1, 0);
    console.info(`stream cut: ${total} handled, ${duplicates} duplicate deliveries`);
    expect(sentAtCut).toBeLessThan(total);
    expect(connectionsBefore).toBeGreaterThanOrEqual(2);
    expect(logger.lines.some((line) => line.includes('lost'))).toBe(true);
    // The password never reaches a log line, even while reconnecting.
    expect(logger.lines.some((line) => line.includes('guest@'))).toBe(false);
  });

  it('a connection cut with 500 requests in flight: every request gets its reply', async () => {
    proxy = await startTcpProxy(brokerUrl);
    const prefix = uniquePrefix('inflight');
    const errorQueue = `${prefix}-error`;
    queues.push(errorQueue);
    const handled = new Map<number, number>();
    await start(
      `${prefix}-Server`,
      proxy.url,
      { concurrency: 50, recoverability: { errorQueue } },
      (e) =>
        e.handle(Ping, async (p, ctx) => {
          handled.set(p.n, (handled.get(p.n) ?? 0) + 1);
          await sleep(20);
          await ctx.reply(Pong, { n: p.n });
        }),
    );
    const client = await start(`${prefix}-Client`, proxy.url, {
      routes: { [Ping.name]: `${prefix}-Server` },
      recoverability: { errorQueue },
      requestTimeoutMs: 90_000,
    });
    const total = 500;
    const requests = Array.from({ length: total }, (_, n) =>
      client.request(Ping, { n }, { expect: Pong }),
    );
    await expect.poll(() => handled.size, wait).toBeGreaterThan(100);
    const handledAtCut = handled.size;
    proxy.cut();
    const replies = await Promise.all(requests);
    expect(replies.map((r) => r.n)).toEqual(Array.from({ length: total }, (_, n) => n));
    expect(handledAtCut).toBeLessThan(total);
    expect(client.stats.pendingRequests).toBe(0);
    const duplicates = [...handled.values()].reduce((sum, times) => sum + times - 1, 0);
    console.info(`in-flight cut: ${total} replies, ${duplicates} requests handled twice`);
  });

  it('an outage longer than unavailableTimeoutMs rejects sends with TransportUnavailableError; they work again after', async () => {
    proxy = await startTcpProxy(brokerUrl);
    const prefix = uniquePrefix('outage');
    const errorQueue = `${prefix}-error`;
    queues.push(errorQueue);
    const got: number[] = [];
    await start(`${prefix}-Server`, brokerUrl, { recoverability: { errorQueue } }, (e) =>
      e.handle(Work, (p) => void got.push(p.n)),
    );
    const sender = createEndpoint({
      name: `${prefix}-Client`,
      transport: createRabbitMqTransport({
        url: proxy.url,
        reconnectInitialDelayMs: 50,
        reconnectMaxDelayMs: 200,
        unavailableTimeoutMs: 1_000,
      }),
      logger: silentLogger,
      sendOnly: true,
      routes: { [Work.name]: `${prefix}-Server` },
      recoverability: { errorQueue },
    });
    endpoints.push(sender);
    await sender.start();
    await sender.send(Work, { n: 1 });
    proxy.pause();
    proxy.cut();
    await expect(sender.send(Work, { n: 2 })).rejects.toMatchObject({
      code: 'TIDINGS_TRANSPORT_UNAVAILABLE',
      isRetryable: true,
    });
    proxy.resume();
    await expect
      .poll(
        async () =>
          sender.send(Work, { n: 3 }).then(
            () => true,
            () => false,
          ),
        wait,
      )
      .toBe(true);
    await expect.poll(() => got.includes(3), wait).toBe(true);
    expect(got).not.toContain(2);
  });

  it('a handler that always throws: the message ends in the error queue with failure headers', async () => {
    const prefix = uniquePrefix('throws');
    const errorQueue = `${prefix}-error`;
    queues.push(errorQueue);
    let attempts = 0;
    await start(
      `${prefix}-Server`,
      brokerUrl,
      {
        recoverability: {
          errorQueue,
          immediateRetries: 1,
          delayedRetries: { count: 1, delayMs: 1_000 },
        },
      },
      (e) =>
        e.handle(Work, () => {
          attempts++;
          throw new RangeError(`always ${attempts}`);
        }),
    );
    const sender = await start(`${prefix}-Client`, brokerUrl, {
      sendOnly: true,
      routes: { [Work.name]: `${prefix}-Server` },
      recoverability: { errorQueue },
    });
    await sender.send(Work, { n: 7 }, { messageId: `${prefix}-m` });
    const failed = await getOne(errorQueue);
    expect(attempts).toBe(4);
    const h = failed.headers;
    expect(h[Headers.MessageId]).toBe(`${prefix}-m`);
    expect(failed.messageId).toBe(`${prefix}-m`);
    expect(h[Headers.ExceptionType]).toBe('RangeError');
    expect(h[Headers.ExceptionMessage]).toBe('always 4');
    expect(h[Headers.FailedQueue]).toBe(`${prefix}-Server`);
    expect(h[Headers.DelayedRetries]).toBe('1');
    expect(failed.persistent).toBe(true);
    expect(JSON.parse(failed.body)).toEqual({ n: 7 });
  });

  it('malformed, headerless and __proto__ messages published with raw amqplib go to the error queue; the endpoint keeps going', async () => {
    const prefix = uniquePrefix('raw');
    const errorQueue = `${prefix}-error`;
    queues.push(errorQueue);
    const got: number[] = [];
    const server = await start(
      `${prefix}-Server`,
      brokerUrl,
      { recoverability: { errorQueue } },
      (e) => e.handle(Work, (p) => void got.push(p.n)),
    );
    const connection = await rawConnection();
    try {
      const channel = await connection.createConfirmChannel();
      const to = `${prefix}-Server`;
      const typed = (id: string) => ({
        messageId: `${prefix}-${id}`,
        headers: { [Headers.MessageType]: Work.name, [Headers.ContentType]: 'application/json' },
      });
      channel.sendToQueue(to, Buffer.from('{"n": 1'), typed('bad-json'));
      channel.sendToQueue(to, Buffer.from('{"n":2,"__proto__":{"polluted":true}}'), typed('proto'));
      channel.sendToQueue(to, Buffer.from('{"n":3}'), { messageId: `${prefix}-no-type` });
      channel.sendToQueue(to, Buffer.from([0xff, 0xfe, 0x00]), typed('binary'));
      // Packed bus headers that are not JSON.
      channel.sendToQueue(to, Buffer.from('{"n":6}'), {
        messageId: `${prefix}-bad-packed`,
        type: Work.name,
        headers: { [PACKED_HEADERS]: '{"intent":' },
      });
      channel.sendToQueue(to, Buffer.from('{"n":5}'), typed('good'));
      await channel.waitForConfirms();
    } finally {
      await connection.close();
    }
    await expect.poll(() => got, wait).toEqual([5]);
    await expect.poll(() => server.stats.movedToErrorQueue, wait).toBe(5);
    const codes: Record<string, string | undefined> = {};
    for (let i = 0; i < 5; i++) {
      const message = await getOne(errorQueue);
      codes[message.headers[Headers.MessageId] ?? '?'] = message.headers[Headers.ExceptionCode];
    }
    expect(codes).toEqual({
      [`${prefix}-bad-json`]: 'TIDINGS_DESERIALIZATION',
      [`${prefix}-proto`]: 'TIDINGS_DESERIALIZATION',
      [`${prefix}-no-type`]: 'TIDINGS_MALFORMED_MESSAGE',
      [`${prefix}-binary`]: 'TIDINGS_DESERIALIZATION',
      [`${prefix}-bad-packed`]: 'TIDINGS_MALFORMED_MESSAGE',
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('channel errors do not take the endpoint down: unknown queue, deleted exchange, deleted input queue', async () => {
    const prefix = uniquePrefix('channel');
    const errorQueue = `${prefix}-error`;
    queues.push(errorQueue);
    const got: number[] = [];
    const events: number[] = [];
    await start(`${prefix}-Server`, brokerUrl, { recoverability: { errorQueue } }, (e) => {
      e.handle(Work, (p) => void got.push(p.n));
      e.handle(Noted, (p) => void events.push(p.n));
    });
    const sender = await start(`${prefix}-Client`, brokerUrl, {
      routes: { [Work.name]: `${prefix}-Server` },
      recoverability: { errorQueue },
    });
    // Unroutable (basic.return) and a delayed send to a queue that does not exist (404 on bind).
    await expect(sender.send(Work, { n: 0 }, { to: `${prefix}-Nowhere` })).rejects.toBeInstanceOf(
      DestinationNotFoundError,
    );
    await expect(
      sender.send(Work, { n: 0 }, { to: `${prefix}-Nowhere`, delayMs: 1_000 }),
    ).rejects.toBeInstanceOf(DestinationNotFoundError);
    await sender.send(Work, { n: 1 });
    await expect.poll(() => got, wait).toEqual([1]);

    // An event exchange deleted behind the publisher's back: the 404 closes its channel; the
    // publish is retried on a new channel after declaring the exchange again.
    await sender.publish(Noted, { n: 1 });
    await expect.poll(() => events, wait).toEqual([1]);
    await deleteTopology([], [Noted.name]);
    await sender.publish(Noted, { n: 2 });

    // The input queue deleted under the consumer: it is declared and consumed again.
    await deleteTopology([`${prefix}-Server`]);
    await expect
      .poll(async () => {
        await sender.send(Work, { n: 2 }).catch(() => {});
        return got.includes(2);
      }, wait)
      .toBe(true);
    // The resubscribed event exchange works again too.
    await sender.publish(Noted, { n: 3 });
    await expect.poll(() => events.includes(3), wait).toBe(true);
  });
});

/** Takes one message from a queue with raw amqplib, waiting for it to arrive. */
async function getOne(queue: string): Promise<{
  headers: Record<string, string | undefined>;
  messageId: string | undefined;
  body: string;
  persistent: boolean;
}> {
  const connection = await rawConnection();
  try {
    const channel = await connection.createChannel();
    const deadline = Date.now() + wait.timeout;
    while (Date.now() < deadline) {
      const message = await channel.get(queue, { noAck: true });
      if (message !== false) {
        return {
          // Bus headers as a receiver reads them: the table plus the native properties.
          headers: headersFromAmqp(message.properties).headers as Record<
            string,
            string | undefined
          >,
          messageId: message.properties.messageId as string | undefined,
          body: message.content.toString(),
          persistent: message.properties.deliveryMode === 2,
        };
      }
      await sleep(50);
    }
    throw new Error(`nothing arrived in ${queue}`);
  } finally {
    await connection.close();
  }
}
