import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createInMemoryTransport,
  defineMessage,
  type Endpoint,
  type HandlerContext,
  Headers,
  MessageTooLargeError,
  NoRouteError,
  type Transport,
  UsageError,
} from '../src/index.ts';
import { putRaw, readQueue, recordingLogger, sleep, world } from './helpers.ts';

const Job = defineMessage<{ n: number }>('t.Job');
const Unrouted = defineMessage<{ n: number }>('t.Unrouted');
const Big = defineMessage<{ text: string }>('t.Big');
const Small = defineMessage<{ n: number }>('t.Small');

/** The body of a message read from a queue, with its type. */
const sent = (message: { headers: Record<string, string>; body: Uint8Array }) => ({
  type: message.headers[Headers.MessageType],
  payload: JSON.parse(Buffer.from(message.body).toString('utf8')) as unknown,
});

/** The message was handled and nothing went to the error queue. */
function expectHandled(
  server: { stats: { handled: number; movedToErrorQueue: number } },
  errors: { messages: unknown[] },
) {
  expect(server.stats).toMatchObject({ handled: 1, movedToErrorQueue: 0 });
  expect(errors.messages).toEqual([]);
}

/** A hand-made incoming `Job`, without a reply-to address. */
const putJob = (transport: Transport, queue: string) =>
  putRaw(transport, queue, `job-${queue}`, { [Headers.MessageType]: Job.name });

describe('sends, replies and publishes made in a handler', () => {
  const w = world();
  const unhandled: unknown[] = [];
  const recordUnhandled = (reason: unknown) => void unhandled.push(reason);
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', recordUnhandled);
  });
  afterEach(async () => {
    await w.stopAll();
    process.off('unhandledRejection', recordUnhandled);
    // Our listener takes the place of vitest's report, so every test checks it.
    expect(unhandled).toEqual([]);
  });

  /**
   * A started server without retries whose `Job` handler runs `handle`, with its error queue and
   * `<name>.out` being read, and one `Job` put in its queue. `setup` runs before the start.
   */
  async function jobServer(
    name: string,
    handle: (ctx: HandlerContext) => void | Promise<void>,
    {
      transport = w.transport,
      setup,
    }: { transport?: Transport; setup?: (server: Endpoint) => void } = {},
  ) {
    const server = w.endpoint({
      name,
      transport,
      recoverability: {
        immediateRetries: 0,
        delayedRetries: { count: 0 },
        errorQueue: `${name}.errors`,
      },
    });
    setup?.(server);
    server.handle(Job, (_job, ctx) => handle(ctx));
    await server.start();
    const errors = await readQueue(transport, `${name}.errors`);
    const delivered = await readQueue(transport, `${name}.out`);
    await putJob(transport, name);
    return { server, errors, delivered };
  }

  it('a send the handler does not await that has no route fails the attempt: retried, then the error queue', async () => {
    let attempts = 0;
    const server = w.endpoint({
      name: 'UnawaitedNoRoute',
      recoverability: {
        immediateRetries: 1,
        delayedRetries: { count: 0 },
        errorQueue: 'UnawaitedNoRoute.errors',
      },
    });
    server.handle(Job, (_job, ctx) => {
      attempts++;
      void ctx.send(Unrouted, { n: 1 });
    });
    await server.start();
    const errors = await readQueue(w.transport, 'UnawaitedNoRoute.errors');
    await putJob(w.transport, server.name);
    await expect.poll(() => server.stats.handled + server.stats.movedToErrorQueue).toBe(1);
    expect(server.stats).toMatchObject({ handled: 0, immediateRetries: 1, movedToErrorQueue: 1 });
    expect(attempts).toBe(2);
    await expect.poll(() => errors.messages.length).toBe(1);
    const headers = errors.messages[0]?.headers ?? {};
    expect(headers[Headers.ExceptionType]).toBe(NoRouteError.name);
    expect(headers[Headers.ExceptionCode]).toBe('TIDINGS_NO_ROUTE');
    expect(headers[Headers.ExceptionMessage]).toContain(
      `No route for message type '${Unrouted.name}'`,
    );
    expect(headers[Headers.FailedQueue]).toBe(server.name);
    await errors.close();
  });

  it('a reply the handler does not await to a message without reply-to goes to the error queue without retries', async () => {
    let attempts = 0;
    const server = w.endpoint({
      name: 'UnawaitedReply',
      recoverability: { immediateRetries: 3, errorQueue: 'UnawaitedReply.errors' },
    });
    server.handle(Job, (_job, ctx) => {
      attempts++;
      void ctx.reply(0);
    });
    await server.start();
    const errors = await readQueue(w.transport, 'UnawaitedReply.errors');
    await putJob(w.transport, server.name);
    await expect.poll(() => server.stats.handled + server.stats.movedToErrorQueue).toBe(1);
    expect(server.stats).toMatchObject({ handled: 0, immediateRetries: 0, movedToErrorQueue: 1 });
    expect(attempts).toBe(1);
    await expect.poll(() => errors.messages.length).toBe(1);
    expect(errors.messages[0]?.headers[Headers.ExceptionCode]).toBe('TIDINGS_USAGE');
    await errors.close();
  });

  describe(".then without a rejection handler and .finally do not make a failure the handler's", () => {
    async function failingServer(
      name: string,
      handle: (ctx: HandlerContext) => void | Promise<void>,
    ) {
      const { server, errors } = await jobServer(name, handle);
      await expect.poll(() => server.stats.handled + server.stats.movedToErrorQueue).toBe(1);
      await expect.poll(() => errors.messages.length).toBe(1);
      await errors.close();
      return { server, errors };
    }

    it.each([
      ['FollowThen', '.then(onFulfilled)', (sending: Promise<void>) => void sending.then(() => {})],
      ['FollowFinally', '.finally', (sending: Promise<void>) => void sending.finally(() => {})],
    ])(
      '%s: a send with no route followed by %s fails the attempt, and nothing is left unhandled',
      async (name, _form, follow) => {
        const { server, errors } = await failingServer(name, (ctx) => {
          follow(ctx.send(Unrouted, { n: 1 }));
        });
        expect(server.stats).toMatchObject({ handled: 0, movedToErrorQueue: 1 });
        expect(errors.messages[0]?.headers[Headers.ExceptionCode]).toBe('TIDINGS_NO_ROUTE');
      },
    );

    it('a chain that catches only at its end gets the failure, and the attempt fails all the same', async () => {
      const caught: unknown[] = [];
      const { server } = await failingServer('CatchAtEnd', (ctx) => {
        void ctx
          .send(Unrouted, { n: 1 })
          .then(() => {})
          .catch((error: unknown) => void caught.push(error));
      });
      expect(caught).toEqual([expect.any(NoRouteError)]);
      expect(server.stats).toMatchObject({ handled: 0, movedToErrorQueue: 1 });
    });

    it('a handler that awaits what .finally returns still gets the rejection; the attempt fails all the same', async () => {
      const caught: unknown[] = [];
      const { server } = await failingServer('AwaitFinally', async (ctx) => {
        try {
          await ctx.send(Unrouted, { n: 1 }).finally(() => {});
        } catch (error) {
          caught.push(error);
        }
      });
      expect(caught).toEqual([expect.any(NoRouteError)]);
      expect(server.stats).toMatchObject({ handled: 0, movedToErrorQueue: 1 });
    });

    it(".then with a rejection handler makes the failure the handler's: the message is handled", async () => {
      const caught: unknown[] = [];
      const server = w.endpoint({
        name: 'ThenWithRejection',
        recoverability: { immediateRetries: 0 },
      });
      server.handle(Job, (_job, ctx) => {
        void ctx.send(Unrouted, { n: 1 }).then(
          () => {},
          (error: unknown) => void caught.push(error),
        );
      });
      await server.start();
      await putJob(w.transport, server.name);
      await expect.poll(() => server.stats.handled + server.stats.movedToErrorQueue).toBe(1);
      expect(server.stats).toMatchObject({ handled: 1, movedToErrorQueue: 0 });
      expect(caught).toEqual([expect.any(NoRouteError)]);
    });
  });

  describe('a send made after the attempt finished is refused, not dropped', () => {
    it('without middleware: a send chained on one the handler did not await rejects with UsageError and is logged', async () => {
      const name = 'LateFast';
      const out = { to: `${name}.out` };
      const logger = recordingLogger();
      const late: unknown[] = [];
      const server = w.endpoint({ name, logger, recoverability: { immediateRetries: 0 } });
      server.handle(Job, (_job, ctx) => {
        void ctx
          .send(Small, { n: 1 }, out)
          .then(() => ctx.send(Small, { n: 2 }, out))
          .catch((error: unknown) => void late.push(error));
        // Not awaited, not caught: refused all the same, and it cannot end the process.
        void ctx.send(Small, { n: 3 }, out).then(() => void ctx.send(Small, { n: 4 }, out));
      });
      await server.start();
      const delivered = await readQueue(w.transport, `${name}.out`);
      await putJob(w.transport, name);
      await expect.poll(() => server.stats.handled).toBe(1);
      await expect.poll(() => late.length).toBe(1);
      expect(late[0]).toBeInstanceOf(UsageError);
      expect((late[0] as Error).message).toMatch(/had finished.*await/is);
      await expect.poll(() => logger.lines.filter((line) => line.level === 'error').length).toBe(2);
      await sleep(20);
      expect(delivered.messages.map((m) => (sent(m).payload as { n: number }).n).sort()).toEqual([
        1, 3,
      ]);
      await delivered.close();
    });

    it('with asynchronous outgoing middleware: a send chained two steps after one not awaited rejects with UsageError and is logged', async () => {
      const name = 'LateSlow';
      const out = { to: `${name}.out` };
      const logger = recordingLogger();
      const late: unknown[] = [];
      const server = w.endpoint({ name, logger, recoverability: { immediateRetries: 0 } });
      server.useOutgoing(async (_ctx, next) => {
        await sleep(5);
        await next();
      });
      server.handle(Job, (_job, ctx) => {
        void ctx
          .send(Small, { n: 1 }, out)
          .then(() => {})
          .then(() => ctx.send(Small, { n: 2 }, out))
          .catch((error: unknown) => void late.push(error));
      });
      await server.start();
      const delivered = await readQueue(w.transport, `${name}.out`);
      await putJob(w.transport, name);
      await expect.poll(() => server.stats.handled).toBe(1);
      await expect.poll(() => late.length).toBe(1);
      expect(late[0]).toBeInstanceOf(UsageError);
      expect(logger.lines.filter((line) => line.level === 'error')).toEqual([
        expect.objectContaining({ message: expect.stringMatching(/had finished/) }),
      ]);
      await sleep(20);
      expect(delivered.messages.map((m) => (sent(m).payload as { n: number }).n)).toEqual([1]);
      await delivered.close();
    });
  });

  describe('a failure the handler catches on purpose is its own business', () => {
    // A small limit, so that a message is too large without building megabytes.
    const small = createInMemoryTransport({ maxMessageSizeBytes: 2048 });
    const tooLarge = { text: 'x'.repeat(4096) };

    const serverWith = (name: string, handle: (ctx: HandlerContext) => void | Promise<void>) =>
      jobServer(name, handle, { transport: small });

    it('with try and await: the handler sends something smaller instead, and the message is handled', async () => {
      const caught: unknown[] = [];
      const name = 'CatchAwaited';
      const { server, errors, delivered } = await serverWith(name, async (ctx) => {
        try {
          await ctx.send(Big, tooLarge, { to: `${name}.out` });
        } catch (error) {
          caught.push(error);
          await ctx.send(Small, { n: 1 }, { to: `${name}.out` });
        }
      });
      await expect
        .poll(() => delivered.messages.map(sent))
        .toEqual([{ type: Small.name, payload: { n: 1 } }]);
      expect(caught).toEqual([expect.any(MessageTooLargeError)]);
      expectHandled(server, errors);
      await Promise.all([errors.close(), delivered.close()]);
    });

    it('with .catch and no await: what the catch sends still leaves, and the message is handled', async () => {
      const caught: unknown[] = [];
      const name = 'CatchChained';
      const { server, errors, delivered } = await serverWith(name, (ctx) => {
        void ctx.send(Unrouted, { n: 0 }).catch((error: unknown) => {
          caught.push(error);
          return ctx.send(Small, { n: 2 }, { to: `${name}.out` });
        });
      });
      await expect
        .poll(() => delivered.messages.map(sent))
        .toEqual([{ type: Small.name, payload: { n: 2 } }]);
      expect(caught).toEqual([expect.any(NoRouteError)]);
      expectHandled(server, errors);
      await Promise.all([errors.close(), delivered.close()]);
    });
  });

  describe('with asynchronous outgoing middleware', () => {
    /** A server whose outgoing middleware waits on a timer, as one that fetches a token would. */
    const slowServer = (name: string, handle: (ctx: HandlerContext) => void | Promise<void>) =>
      jobServer(name, handle, {
        setup: (server) =>
          server.useOutgoing(async (_ctx, next) => {
            await sleep(5);
            await next();
          }),
      });

    it('a send the handler does not await is delivered, not dropped', async () => {
      const name = 'SlowUnawaited';
      const { server, errors, delivered } = await slowServer(name, (ctx) => {
        void ctx.send(Small, { n: 3 }, { to: `${name}.out` });
      });
      await expect.poll(() => server.stats.handled + server.stats.movedToErrorQueue).toBe(1);
      expect(server.stats).toMatchObject({ handled: 1, movedToErrorQueue: 0 });
      await expect
        .poll(() => delivered.messages.map(sent))
        .toEqual([{ type: Small.name, payload: { n: 3 } }]);
      expect(errors.messages).toEqual([]);
      await Promise.all([errors.close(), delivered.close()]);
    });

    it('a send the handler does not await that fails after the middleware fails the attempt', async () => {
      const name = 'SlowUnawaitedFails';
      const { server, errors, delivered } = await slowServer(name, (ctx) => {
        // A payload the JSON serializer cannot write: it fails after the middleware has waited.
        void ctx.send(Small, { n: 10n } as never, { to: `${name}.out` });
      });
      await expect.poll(() => errors.messages.length).toBe(1);
      expect(errors.messages[0]?.headers[Headers.ExceptionCode]).toBe('TIDINGS_SERIALIZATION');
      expect(server.stats).toMatchObject({ handled: 0, movedToErrorQueue: 1 });
      expect(delivered.messages).toEqual([]);
      await Promise.all([errors.close(), delivered.close()]);
    });

    it('a send that fails after the middleware, followed only by .then(onFulfilled), fails the attempt', async () => {
      const name = 'SlowThenFails';
      const { server, errors, delivered } = await slowServer(name, (ctx) => {
        void ctx.send(Small, { n: 10n } as never, { to: `${name}.out` }).then(() => {});
      });
      await expect.poll(() => errors.messages.length).toBe(1);
      expect(errors.messages[0]?.headers[Headers.ExceptionCode]).toBe('TIDINGS_SERIALIZATION');
      expect(server.stats).toMatchObject({ handled: 0, movedToErrorQueue: 1 });
      await Promise.all([errors.close(), delivered.close()]);
    });

    it('Promise.all over sends works, and a rejection it observes and the handler catches does not fail the attempt', async () => {
      const caught: unknown[] = [];
      const name = 'SlowAll';
      const out = { to: `${name}.out` };
      const { server, errors, delivered } = await slowServer(name, async (ctx) => {
        await Promise.all([ctx.send(Small, { n: 4 }, out), ctx.send(Small, { n: 5 }, out)]);
        try {
          await Promise.all([ctx.send(Unrouted, { n: 0 }), ctx.send(Small, { n: 6 }, out)]);
        } catch (error) {
          caught.push(error);
        }
      });
      await expect.poll(() => server.stats.handled + server.stats.movedToErrorQueue).toBe(1);
      expect(server.stats).toMatchObject({ handled: 1, movedToErrorQueue: 0 });
      expect(caught).toEqual([expect.any(NoRouteError)]);
      await expect
        .poll(() => delivered.messages.map((m) => (sent(m).payload as { n: number }).n).sort())
        .toEqual([4, 5, 6]);
      expect(errors.messages).toEqual([]);
      await Promise.all([errors.close(), delivered.close()]);
    });
  });
});
