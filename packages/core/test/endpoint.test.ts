import { afterEach, describe, expect, it } from 'vitest';
import { messageSize } from '../src/endpoint/outgoing.ts';
import {
  ConfigurationError,
  createEndpoint,
  createInMemoryTransport,
  createSendOnlyEndpoint,
  DestinationNotFoundError,
  defineMessage,
  EndpointStateError,
  EndpointStoppedError,
  Headers,
  MessageTooLargeError,
  SendOnlyEndpointError,
  type Serializer,
  silentLogger,
  UsageError,
} from '../src/index.ts';
import { readQueue, recordingLogger, sleep, world } from './helpers.ts';

const Ping = defineMessage<{ n: number }>('t.Ping');
const Pong = defineMessage<{ n: number }>('t.Pong');

describe('createEndpoint options', () => {
  const transport = createInMemoryTransport();

  it.each([
    [{ name: '' }, /Endpoint name/],
    [{ name: 'has space' }, /not a valid name/],
    [{ name: 'ok', concurrency: 0 }, /concurrency must be a positive/],
    [{ name: 'ok', requestTimeoutMs: -1 }, /requestTimeoutMs/],
    [{ name: 'ok', maxPendingRequests: 1.5 }, /maxPendingRequests/],
    [{ name: 'ok', instanceId: 'a b' }, /instanceId/],
    [{ name: 'ok', routes: { 't.Ping': '' } }, /route for 't.Ping'/],
    [{ name: 'ok', recoverability: { immediateRetries: -1 } }, /immediateRetries/],
  ])('rejects %j with ConfigurationError', (options, message) => {
    expect(() => createEndpoint({ transport, ...options })).toThrow(ConfigurationError);
    expect(() => createEndpoint({ transport, ...options })).toThrow(message);
  });

  it('needs a transport, and one that speaks this SPI version', () => {
    expect(() => createEndpoint({ name: 'x' } as never)).toThrow(/needs a transport/);
    const future = { ...transport, spiVersion: 99 } as never;
    expect(() => createEndpoint({ name: 'x', transport: future })).toThrow(/SPI version 99/);
  });
});

describe('endpoint lifecycle', () => {
  const w = world();
  afterEach(() => w.stopAll());

  it('logs a generated instance id at start and uses it for the instance queue', async () => {
    const logger = recordingLogger();
    const endpoint = w.endpoint({ name: 'Gen', logger });
    await endpoint.start();
    expect(endpoint.instanceId).toMatch(/^[0-9a-f]{8}$/);
    expect(endpoint.instanceQueue).toBe(`Gen.${endpoint.instanceId}`);
    const started = logger.lines.find((l) => l.message.includes("'Gen' started"));
    expect(started?.fields).toMatchObject({
      instanceId: endpoint.instanceId,
      instanceIdGenerated: true,
    });
  });

  it('refuses to send before start and after stop, and to configure after start', async () => {
    const endpoint = w.endpoint({ name: 'States', routes: { [Ping.name]: 'States' } });
    await expect(endpoint.send(Ping, { n: 1 })).rejects.toThrow(EndpointStateError);
    await endpoint.start();
    expect(() => endpoint.handle(Ping, () => {})).toThrow(/before start/);
    expect(() => endpoint.useIncoming(async (_c, next) => next())).toThrow(EndpointStateError);
    await expect(endpoint.start()).rejects.toThrow(/cannot start/);
    await endpoint.stop();
    await expect(endpoint.send(Ping, { n: 1 })).rejects.toThrow(/stopped/);
    expect(endpoint.state).toBe('stopped');
  });

  it('stop() lets an in-flight handler finish before it resolves', async () => {
    let finished = false;
    const server = w.endpoint({ name: 'Graceful' });
    server.handle(Ping, async () => {
      await sleep(150);
      finished = true;
    });
    await server.start();
    const client = w.endpoint({ name: 'GracefulClient', sendOnly: true });
    await client.start();
    await client.send(Ping, { n: 1 }, { to: 'Graceful' });
    await expect.poll(() => server.stats.inFlight).toBe(1);
    await server.stop();
    expect(finished).toBe(true);
    expect(server.stats.handled).toBe(1);
  });

  it('stop() past its deadline abandons the message: the next instance receives it again', async () => {
    const seen: string[] = [];
    const first = w.endpoint({ name: 'Deadline', instanceId: 'one', stopTimeoutMs: 50 });
    first.handle(Ping, async (_p, ctx) => {
      seen.push(`one:${ctx.signal.aborted}`);
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
      // Sent after the deadline: must not leave, the message is being abandoned.
      await ctx.send(Pong, { n: 1 }, { to: 'Deadline' });
    });
    await first.start();
    const client = w.endpoint({ name: 'DeadlineClient', sendOnly: true });
    await client.start();
    await client.send(Ping, { n: 1 }, { to: 'Deadline' });
    await expect.poll(() => seen.length).toBe(1);
    await first.stop();
    expect(first.stats.handled).toBe(0);
    const second = w.endpoint({ name: 'Deadline', instanceId: 'two' });
    const pongs: number[] = [];
    second.handle(Ping, () => void seen.push('two'));
    second.handle(Pong, (p) => void pongs.push(p.n));
    await second.start();
    await expect.poll(() => seen).toEqual(['one:false', 'two']);
    await sleep(50);
    expect(pongs).toEqual([]);
  });

  it('stop() fails requests a handler awaits (no reply can arrive) instead of waiting out its deadline', async () => {
    const asked: number[] = [];
    const silent = w.endpoint({ name: 'Silent' });
    // Takes the request and never answers.
    silent.handle(Ping, (p) => void asked.push(p.n));
    await silent.start();
    let failure: unknown;
    const server = w.endpoint({
      name: 'Asking',
      stopTimeoutMs: 60_000,
      routes: { [Ping.name]: 'Silent' },
    });
    server.handle(Pong, async (p) => {
      try {
        await server.request(Ping, { n: p.n }, { expect: Pong, timeoutMs: 60_000 });
      } catch (error) {
        failure = error;
      }
    });
    await server.start();
    const client = w.endpoint({ name: 'AskingClient', sendOnly: true });
    await client.start();
    await client.send(Pong, { n: 7 }, { to: 'Asking' });
    await expect.poll(() => asked).toEqual([7]);
    // Resolves well before the 60 s deadline (the test would time out otherwise).
    await server.stop();
    expect(failure).toBeInstanceOf(EndpointStoppedError);
    expect(server.stats.handled).toBe(1);
  });

  it.each([
    ['the defaults', {}],
    ['no delayed retries', { delayedRetries: { count: 0 } }],
  ])(
    'stop() abandons a message whose handler fails on EndpointStoppedError (%s): no retry, no error queue',
    async (name, recoverability) => {
      const errors = await readQueue(w.transport, 'error');
      const silent = w.endpoint({ name: `StopSilent-${name.replace(/\W/g, '')}` });
      const asked: number[] = [];
      silent.handle(Ping, (p) => void asked.push(p.n));
      await silent.start();
      let runs = 0;
      const server = w.endpoint({
        name: `StopAbandons-${name.replace(/\W/g, '')}`,
        recoverability,
        routes: { [Ping.name]: silent.name },
      });
      server.handle(Pong, async (p) => {
        runs++;
        // Not caught: the stop's own error fails the attempt.
        await server.request(Ping, { n: p.n }, { expect: Pong, timeoutMs: 60_000 });
      });
      await server.start();
      const client = w.endpoint({
        name: `StopAbandonsClient-${name.replace(/\W/g, '')}`,
        sendOnly: true,
      });
      await client.start();
      await client.send(Pong, { n: 7 }, { to: server.name });
      await expect.poll(() => asked).toEqual([7]);
      await server.stop();
      expect(runs).toBe(1);
      expect(server.stats).toMatchObject({
        handled: 0,
        immediateRetries: 0,
        delayedRetries: 0,
        movedToErrorQueue: 0,
      });
      // Abandoned: back in its queue, for the next instance.
      expect(w.transport.queueDepth(server.name)).toBe(1);
      expect(w.transport.scheduledCount).toBe(0);
      expect(errors.messages).toEqual([]);
      await errors.close();
    },
  );

  it('any attempt that fails once stop() began abandons its message, whatever the error', async () => {
    let runs = 0;
    let release: () => void = () => {};
    const server = w.endpoint({ name: 'FailWhileStopping', stopTimeoutMs: 5_000 });
    server.handle(Ping, async () => {
      runs++;
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      throw new Error('the database pool is closing');
    });
    await server.start();
    const client = w.endpoint({ name: 'FailWhileStoppingClient', sendOnly: true });
    await client.start();
    await client.send(Ping, { n: 1 }, { to: 'FailWhileStopping' });
    await expect.poll(() => runs).toBe(1);
    const stopping = server.stop();
    release();
    await stopping;
    expect(runs).toBe(1);
    expect(server.stats.immediateRetries).toBe(0);
    expect(w.transport.queueDepth('FailWhileStopping')).toBe(1);
    const second = w.endpoint({ name: 'FailWhileStopping', instanceId: 'second' });
    const again: number[] = [];
    second.handle(Ping, (p) => void again.push(p.n));
    await second.start();
    await expect.poll(() => again).toEqual([1]);
  });

  it('a stop() asked for during start() stops the endpoint once started; a second stop() waits for the first', async () => {
    const early = w.endpoint({ name: 'StopWhileStarting' });
    const starting = early.start();
    const stopping = early.stop();
    await starting;
    await stopping;
    expect(early.state).toBe('stopped');

    const server = w.endpoint({ name: 'StopTwice' });
    server.handle(Ping, async () => {
      await sleep(100);
    });
    await server.start();
    const client = w.endpoint({ name: 'StopTwiceClient', sendOnly: true });
    await client.start();
    await client.send(Ping, { n: 1 }, { to: 'StopTwice' });
    await expect.poll(() => server.stats.inFlight).toBe(1);
    const first = server.stop();
    await server.stop();
    expect(server.state).toBe('stopped');
    await first;
  });

  it('a second start() during a start gets the same promise, and stop() then stops the endpoint', async () => {
    const endpoint = w.endpoint({ name: 'StartTwice' });
    const received: number[] = [];
    endpoint.handle(Ping, (p) => void received.push(p.n));
    const first = endpoint.start();
    const second = endpoint.start();
    expect(second).toBe(first);
    const stopping = endpoint.stop();
    await Promise.all([first, stopping]);
    expect(endpoint.state).toBe('stopped');
    // No longer consuming: a message sent to its queue stays there.
    const client = w.endpoint({ name: 'StartTwiceClient', sendOnly: true });
    await client.start();
    await client.send(Ping, { n: 1 }, { to: 'StartTwice' });
    await sleep(20);
    expect(received).toEqual([]);
    expect(w.transport.queueDepth('StartTwice')).toBe(1);
  });

  it('start() after stop() was asked for, while stopping or once stopped, is an EndpointStateError', async () => {
    const early = w.endpoint({ name: 'StartAfterStop' });
    const starting = early.start();
    const stopping = early.stop();
    // The stop waits for the start under way; a start asked for after it is refused.
    await expect(early.start()).rejects.toThrow(EndpointStateError);
    await starting;
    await stopping;
    expect(early.state).toBe('stopped');
    await expect(early.start()).rejects.toThrow(/stop\(\) was called/);
    expect(early.state).toBe('stopped');

    const never = w.endpoint({ name: 'StopBeforeStart' });
    await never.stop();
    await expect(never.start()).rejects.toThrow(EndpointStateError);
    expect(never.state).toBe('stopped');
  });

  it('a handler that fails after the stop deadline sends no copy to the error queue: the message comes again', async () => {
    const errors = await readQueue(w.transport, 'error');
    const first = w.endpoint({
      name: 'LateFailure',
      instanceId: 'one',
      stopTimeoutMs: 50,
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
    });
    let failedLate = false;
    first.handle(Ping, async (_p, ctx) => {
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
      failedLate = true;
      throw new Error('failed after the deadline');
    });
    await first.start();
    const client = w.endpoint({ name: 'LateFailureClient', sendOnly: true });
    await client.start();
    await client.send(Ping, { n: 1 }, { to: 'LateFailure' });
    await expect.poll(() => first.stats.inFlight).toBe(1);
    await first.stop();
    await expect.poll(() => failedLate).toBe(true);
    const second = w.endpoint({ name: 'LateFailure', instanceId: 'two' });
    const again: number[] = [];
    second.handle(Ping, (p) => void again.push(p.n));
    await second.start();
    await expect.poll(() => again).toEqual([1]);
    expect(errors.messages).toEqual([]);
    expect(first.stats.movedToErrorQueue).toBe(0);
    await errors.close();
  });

  it('a failed start can be retried and leaves nothing open', async () => {
    const transport = createInMemoryTransport();
    let fail = true;
    const flaky = {
      ...transport,
      async openEndpoint(...args: Parameters<typeof transport.openEndpoint>) {
        if (fail) throw new Error('broker down');
        return transport.openEndpoint(...args);
      },
    };
    const endpoint = w.endpoint({ name: 'Flaky', transport: flaky });
    await expect(endpoint.start()).rejects.toThrow('broker down');
    expect(endpoint.state).toBe('created');
    fail = false;
    await endpoint.start();
    expect(endpoint.state).toBe('started');
  });
});

describe('handlers and context', () => {
  const w = world();
  afterEach(() => w.stopAll());

  it('runs several handlers for one type in registration order, sharing one context', async () => {
    const order: string[] = [];
    const server = w.endpoint({ name: 'Multi' });
    server.handle(Ping, async (p, ctx) => {
      await sleep(5);
      order.push(`a${p.n}:${ctx.endpointName}`);
    });
    server.handle(Ping, (p) => void order.push(`b${p.n}`));
    await server.start();
    const client = w.endpoint({ name: 'MultiClient', routes: { [Ping.name]: 'Multi' } });
    await client.start();
    await client.send(Ping, { n: 1 });
    await expect.poll(() => order).toEqual(['a1:Multi', 'b1']);
  });

  it('sends nothing from a failed attempt; the successful retry sends once', async () => {
    let attempts = 0;
    const pongs: number[] = [];
    const server = w.endpoint({ name: 'Batch', recoverability: { immediateRetries: 2 } });
    server.handle(Ping, async (p, ctx) => {
      attempts++;
      await ctx.send(Pong, { n: p.n }, { to: 'BatchSink' });
      await ctx.publish(Pong, { n: p.n + 100 });
      if (attempts < 3) throw new Error('transient');
    });
    const sink = w.endpoint({ name: 'BatchSink' });
    sink.handle(Pong, (p) => void pongs.push(p.n));
    await sink.start();
    await server.start();
    const client = w.endpoint({ name: 'BatchClient', sendOnly: true });
    await client.start();
    await client.send(Ping, { n: 1 }, { to: 'Batch' });
    await expect.poll(() => pongs.length).toBe(2);
    await sleep(30);
    expect(pongs.sort()).toEqual([1, 101]);
    expect(attempts).toBe(3);
    expect(server.stats.immediateRetries).toBe(2);
  });

  it('synchronous handlers: a throw is retried then moved, sends go out, they count as in flight', async () => {
    const inFlightSeen: number[] = [];
    const pongs: number[] = [];
    let attempts = 0;
    const server = w.endpoint({
      name: 'Sync',
      recoverability: { immediateRetries: 1, delayedRetries: { count: 0 } },
    });
    server.handle(Ping, (p, ctx) => {
      inFlightSeen.push(server.stats.inFlight);
      if (p.n === 0) {
        attempts++;
        throw new Error('always');
      }
      // Not awaited: the send is collected at once and dispatched after the handler returns.
      void ctx.send(Pong, { n: p.n }, { to: 'SyncSink' });
    });
    // A thenable that is not a native promise is waited for, as `await` would.
    // biome-ignore lint/suspicious/noThenProperty: a thenable on purpose
    server.handle(Ping, () => ({ then: (resolve: () => void) => setTimeout(resolve, 5) }) as never);
    const sink = w.endpoint({ name: 'SyncSink' });
    sink.handle(Pong, (p) => void pongs.push(p.n));
    await sink.start();
    await server.start();
    const client = w.endpoint({ name: 'SyncClient', sendOnly: true });
    await client.start();
    await client.send(Ping, { n: 0 }, { to: 'Sync' });
    await client.send(Ping, { n: 7 }, { to: 'Sync' });
    await expect.poll(() => server.stats.movedToErrorQueue).toBe(1);
    await expect.poll(() => pongs).toEqual([7]);
    expect(attempts).toBe(2);
    expect(server.stats.immediateRetries).toBe(1);
    expect(server.stats.handled).toBe(1);
    expect(inFlightSeen.every((n) => n >= 1)).toBe(true);
    expect(server.stats.inFlight).toBe(0);
  });

  it('refuses reserved headers and replying to a message without reply-to', async () => {
    const errors: unknown[] = [];
    const server = w.endpoint({
      name: 'NoReplyTo',
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
    });
    server.handle(Ping, async (_p, ctx) => {
      try {
        await ctx.reply(Pong, { n: 1 });
      } catch (error) {
        errors.push(error);
      }
    });
    await server.start();
    const sendOnly = createSendOnlyEndpoint({
      name: 'SO',
      transport: w.transport,
      logger: silentLogger,
    });
    await sendOnly.start();
    await expect(
      sendOnly.send(Ping, { n: 1 }, { to: 'NoReplyTo', headers: { 'tidings.message-id': 'x' } }),
    ).rejects.toThrow(UsageError);
    await sendOnly.send(Ping, { n: 1 }, { to: 'NoReplyTo' });
    await expect.poll(() => errors.length).toBe(1);
    expect(errors[0]).toBeInstanceOf(UsageError);
    expect(String(errors[0])).toMatch(/no reply-to address/);
    await sendOnly.stop();
  });

  it('a send to a queue that does not exist rejects with DestinationNotFoundError', async () => {
    const client = w.endpoint({ name: 'Nowhere', sendOnly: true });
    await client.start();
    await expect(client.send(Ping, { n: 1 }, { to: 'DoesNotExist' })).rejects.toThrow(
      DestinationNotFoundError,
    );
  });

  it('register() on a send-only endpoint throws, and the message is not sent', async () => {
    const target = w.endpoint({ name: 'RegisterTarget' });
    const got: number[] = [];
    target.handle(Ping, (p) => void got.push(p.n));
    await target.start();
    const sendOnly = w.endpoint({
      name: 'RegisterSendOnly',
      sendOnly: true,
      routes: { [Ping.name]: 'RegisterTarget' },
    });
    await sendOnly.start();
    const sent = sendOnly.send(Ping, { n: 1 });
    expect(() => sent.register(() => {})).toThrow(SendOnlyEndpointError);
    await expect(sent).rejects.toThrow(SendOnlyEndpointError);
    // Queues keep order: had the first gone out, it would arrive before this one.
    await sendOnly.send(Ping, { n: 2 });
    await expect.poll(() => got).toEqual([2]);
  });

  it('send-only endpoints have no queues and say why they cannot receive', async () => {
    const sendOnly = w.endpoint({ name: 'OnlySends', sendOnly: true });
    expect(sendOnly.inputQueue).toBeUndefined();
    expect(sendOnly.instanceId).toBeUndefined();
    expect(() => sendOnly.handle(Ping, () => {})).toThrow(SendOnlyEndpointError);
    expect(() => sendOnly.handle(Ping, () => {})).toThrow(/no input queue/);
  });

  it('uses a pluggable serializer and refuses content types it cannot read', async () => {
    const reversed: Serializer = {
      contentType: 'application/x-reversed-json',
      serialize: (payload) => Buffer.from(JSON.stringify(payload).split('').reverse().join('')),
      deserialize: (body) => JSON.parse(Buffer.from(body).toString().split('').reverse().join('')),
    };
    const got: Array<{ n: number; type: string | undefined }> = [];
    const server = w.endpoint({ name: 'Custom', serializer: reversed });
    server.handle(
      Ping,
      (p, ctx) => void got.push({ n: p.n, type: ctx.headers[Headers.ContentType] }),
    );
    await server.start();
    const client = w.endpoint({ name: 'CustomClient', serializer: reversed, sendOnly: true });
    const jsonClient = w.endpoint({ name: 'JsonClient', sendOnly: true });
    await client.start();
    await jsonClient.start();
    await client.send(Ping, { n: 7 }, { to: 'Custom' });
    await jsonClient.send(Ping, { n: 8 }, { to: 'Custom' });
    await expect.poll(() => server.stats.movedToErrorQueue).toBe(1);
    expect(got).toEqual([{ n: 7, type: 'application/x-reversed-json' }]);
  });

  it('delays a send when asked, and refuses delays on a transport that cannot', async () => {
    const arrivals: number[] = [];
    const server = w.endpoint({ name: 'Later' });
    server.handle(Ping, () => void arrivals.push(Date.now()));
    await server.start();
    const client = w.endpoint({ name: 'LaterClient', sendOnly: true });
    await client.start();
    const t0 = Date.now();
    await client.send(Ping, { n: 1 }, { to: 'Later', delayMs: 200 });
    expect(w.transport.scheduledCount).toBe(1);
    await expect.poll(() => arrivals.length).toBe(1);
    expect((arrivals[0] as number) - t0).toBeGreaterThanOrEqual(190);

    const noDelay = {
      ...w.transport,
      capabilities: { ...w.transport.capabilities, delayedDelivery: false },
    };
    const plain = w.endpoint({ name: 'Plain', transport: noDelay, sendOnly: true });
    await plain.start();
    await expect(plain.send(Ping, { n: 1 }, { to: 'Later', delayMs: 10 })).rejects.toThrow(
      /cannot delay/,
    );
  });
});

describe('message size', () => {
  const limit = 4_096;
  const transport = createInMemoryTransport({ maxMessageSizeBytes: limit });
  const made: Array<ReturnType<typeof createEndpoint>> = [];
  afterEach(async () => {
    await Promise.all(made.splice(0).map((endpoint) => endpoint.stop()));
  });
  /** A started send-only endpoint routing Ping to 'Sized'; `configure` runs before the start. */
  const sender = async (
    name = 'Sizer',
    configure: (endpoint: ReturnType<typeof createSendOnlyEndpoint>) => void = () => {},
  ) => {
    const endpoint = createSendOnlyEndpoint({
      name,
      transport,
      logger: silentLogger,
      routes: { [Ping.name]: 'Sized' },
    });
    made.push(endpoint);
    configure(endpoint);
    await endpoint.start();
    return endpoint;
  };

  it('counts header values in UTF-8 bytes: 2,000 characters of é are 4,000 bytes', async () => {
    const endpoint = await sender();
    const headers = { note: 'é'.repeat(2_000) };
    // In characters the message is well under the limit; in bytes, over it.
    const error = await endpoint.send(Ping, { n: 1 }, { headers }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MessageTooLargeError);
    expect((error as MessageTooLargeError).message).toMatch(/\b4\d{3} bytes/);
  });

  it('counts a bus header as packed JSON: a control character is six bytes, a quote two', () => {
    const none = new Uint8Array(0);
    const name = 'tidings.note';
    expect(messageSize({ [name]: '\u0001'.repeat(100) }, none)).toBe(name.length + 600);
    expect(messageSize({ [name]: '"'.repeat(100) }, none)).toBe(name.length + 200);
    expect(messageSize({ [name]: 'é'.repeat(100) }, none)).toBe(name.length + 200);
    expect(messageSize({ [name]: 'plain' }, none)).toBe(name.length + 5);
    // Other headers are entries of their own, not JSON.
    expect(messageSize({ note: '\u0001'.repeat(100) }, none)).toBe(4 + 100);
  });

  it('refuses a message whose bus headers, written as JSON, are over the limit', async () => {
    const endpoint = await sender('SizerJson', (configured) =>
      // 700 control characters: 700 units, under the limit at three bytes each, 4,200 bytes as JSON.
      configured.useOutgoing(async (ctx, next) => {
        ctx.headers['tidings.note'] = '\u0001'.repeat(700);
        await next();
      }),
    );
    const error = await endpoint.send(Ping, { n: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MessageTooLargeError);
  });

  it('sends a message under the limit in bytes that would be over it at three bytes a character', async () => {
    const received: string[] = [];
    const receiver = createEndpoint({ name: 'Sized', transport, logger: silentLogger });
    made.push(receiver);
    receiver.handle(Ping, (_ping, ctx) => void received.push(ctx.headers.note ?? ''));
    await receiver.start();
    const endpoint = await sender();
    await endpoint.send(Ping, { n: 1 }, { headers: { note: 'e'.repeat(3_000) } });
    await expect.poll(() => received.map((note) => note.length)).toEqual([3_000]);
  });
});
