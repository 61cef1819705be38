import {
  createEndpoint,
  defineMessage,
  type Endpoint,
  type EndpointOptions,
  RequestTimeoutError,
  silentLogger,
} from '@tidings/core';
import { recordingLogger } from '@tidings/transport-tests';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import { brokerUrl, deleteTopology, queueDepth } from './broker.ts';
import { disposeEndpoints, uniquePrefix } from './helpers.ts';

const Ask = defineMessage<{ n: number }>('rmqlate.Ask');
const Answer = defineMessage<{ n: number }>('rmqlate.Answer');
const Noted = defineMessage<{ n: number }>('rmqlate.Noted');

const wait = { timeout: 30_000, interval: 50 };

describe('rabbitmq: a reply to an instance queue that is gone', { timeout: 60_000 }, () => {
  const endpoints: Endpoint[] = [];
  const queues: string[] = [];

  afterEach(() => disposeEndpoints(endpoints.splice(0), queues.splice(0)));
  // Every handled type got a fanout exchange.
  afterAll(() => deleteTopology([], [Ask.name, Answer.name, Noted.name]));

  const start = async (
    options: Omit<EndpointOptions, 'transport'>,
    setup?: (endpoint: Endpoint) => void,
  ) => {
    const endpoint = createEndpoint({
      transport: createRabbitMqTransport({ url: brokerUrl }),
      logger: silentLogger,
      ...options,
    });
    setup?.(endpoint);
    endpoints.push(endpoint);
    await endpoint.start();
    return endpoint;
  };

  // A request's reply is express (ADR 13): the broker returns it, the transport logs that, and
  // nothing waits to hear of it. A plain send's reply is durable: its confirm says the queue is
  // gone, and core drops and counts it (ADR 11). Either way the server's message is handled once.
  it.each([
    ['an express reply to a request', 'request'],
    ['a durable reply to a send', 'send'],
  ] as const)('%s: the handler runs once and its other sends go', async (_label, mode) => {
    const prefix = uniquePrefix(`late-${mode}`);
    const errorQueue = `${prefix}-error`;
    queues.push(errorQueue);
    const recoverability = { errorQueue, immediateRetries: 1, delayedRetries: { count: 0 } };

    const noted: number[] = [];
    await start({ name: `${prefix}-Out`, recoverability }, (e) =>
      e.handle(Noted, (p) => void noted.push(p.n)),
    );

    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let runs = 0;
    const logger = recordingLogger();
    const server = await start({ name: `${prefix}-Server`, logger, recoverability }, (e) =>
      e.handle(Ask, async (ask, ctx) => {
        runs++;
        // Answers only once the client has given up and gone.
        await released;
        await ctx.reply(Answer, { n: ask.n });
        await ctx.send(Noted, { n: ask.n }, { to: `${prefix}-Out` });
      }),
    );

    const client = await start({
      name: `${prefix}-Client`,
      instanceId: 'gone',
      recoverability,
      routes: { [Ask.name]: server.name },
    });
    let goneQueue: string;
    if (mode === 'request') {
      const timedOut = await client
        .request(Ask, { n: 7 }, { expect: Answer, timeoutMs: 500 })
        .catch((error: unknown) => error);
      expect(timedOut).toBeInstanceOf(RequestTimeoutError);
      goneQueue = client.instanceQueue as string;
    } else {
      await client.send(Ask, { n: 7 });
      goneQueue = client.inputQueue as string;
    }
    await client.stop();
    // What its `x-expires` does once nobody consumes it, without waiting for it.
    await deleteTopology([goneQueue]);
    expect(await queueDepth(goneQueue)).toBeUndefined();

    release();
    await expect.poll(() => noted, wait).toEqual([7]);
    await expect.poll(() => server.stats.handled, wait).toBe(1);
    expect(runs).toBe(1);
    expect(server.stats).toMatchObject({
      undeliverableReplies: mode === 'send' ? 1 : 0,
      immediateRetries: 0,
      movedToErrorQueue: 0,
    });
    expect(await queueDepth(errorQueue)).toBe(0);
    if (mode === 'send') {
      const warning = logger.lines.find((line) => line.startsWith('warn Dropped a reply'));
      expect(warning).toContain(`'${goneQueue}'`);
    } else {
      await expect
        .poll(() => logger.lines.filter((line) => line.startsWith('warn')).length, wait)
        .toBeGreaterThan(0);
    }
  });

  it('a send to a queue that never existed still fails the attempt', async () => {
    const prefix = uniquePrefix('late-send');
    const errorQueue = `${prefix}-error`;
    queues.push(errorQueue);
    const server = await start(
      {
        name: `${prefix}-Server`,
        recoverability: { errorQueue, immediateRetries: 0, delayedRetries: { count: 0 } },
      },
      (e) =>
        e.handle(Ask, async (ask, ctx) => {
          await ctx.send(Noted, { n: ask.n }, { to: `${prefix}-Nowhere` });
        }),
    );
    const sender = await start({ name: `${prefix}-Sender`, sendOnly: true });
    await sender.send(Ask, { n: 1 }, { to: server.name });
    await expect.poll(() => server.stats.movedToErrorQueue, wait).toBe(1);
    expect(server.stats).toMatchObject({ handled: 0, undeliverableReplies: 0 });
  });
});
