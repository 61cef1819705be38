import { afterEach, describe, expect, it } from 'vitest';
import { defineMessage, type Endpoint, type HandlerContext, Headers } from '../src/index.ts';
import { putRaw, readQueue, recordingLogger, world } from './helpers.ts';

const Ask = defineMessage<{ n: number }>('t.Ask');
const Answer = defineMessage<{ n: number }>('t.Answer');
const Noted = defineMessage<{ n: number }>('t.Noted');

describe('a reply to a queue that no longer exists', () => {
  const w = world();
  afterEach(() => w.stopAll());

  /**
   * A server whose `Ask` handler runs `handle`, without retries, and an `Ask` put in its queue
   * whose reply-to names a queue that does not exist (a requester that stopped, its queue expired).
   */
  async function askServer(
    name: string,
    handle: (payload: { n: number }, ctx: HandlerContext) => Promise<void>,
    setup: (endpoint: Endpoint) => void = () => {},
  ) {
    const logger = recordingLogger();
    const out = await readQueue(w.transport, `${name}.out`);
    const errors = await readQueue(w.transport, 'error');
    let runs = 0;
    const server = w.endpoint({
      name,
      logger,
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
    });
    server.handle(Ask, async (payload, ctx) => {
      runs++;
      await handle(payload, ctx);
    });
    setup(server);
    await server.start();
    await putRaw(w.transport, name, `ask-${name}`, {
      [Headers.MessageType]: Ask.name,
      [Headers.ReplyTo]: `${name}-client.gone`,
    });
    await expect.poll(() => server.stats.handled + server.stats.movedToErrorQueue).toBe(1);
    return { server, logger, out, errors, runs: () => runs };
  }

  it.each([
    ['without middleware', false],
    ['with asynchronous outgoing middleware', true],
  ])(
    'is dropped with a warning and counted; the handler runs once and its other messages go (%s)',
    async (_label, withMiddleware) => {
      const name = withMiddleware ? 'LateMw' : 'Late';
      const { server, logger, out, errors, runs } = await askServer(
        name,
        async (payload, ctx) => {
          await ctx.reply(Answer, { n: payload.n });
          await ctx.send(Noted, { n: 1 }, { to: `${name}.out` });
        },
        (endpoint) => {
          if (withMiddleware) {
            endpoint.useOutgoing(async (_ctx, next) => {
              await Promise.resolve();
              await next();
            });
          }
        },
      );
      expect(runs()).toBe(1);
      expect(server.stats).toMatchObject({
        handled: 1,
        undeliverableReplies: 1,
        movedToErrorQueue: 0,
        immediateRetries: 0,
      });
      await expect.poll(() => out.messages.length).toBe(1);
      expect(out.messages[0]?.headers[Headers.MessageType]).toBe(Noted.name);
      expect(errors.messages).toEqual([]);
      const warning = logger.lines.find(
        (l) => l.level === 'warn' && /Dropped a reply/.test(l.message),
      );
      expect(warning?.message).toContain(`'${name}-client.gone'`);
      await Promise.all([out.close(), errors.close()]);
    },
  );

  it('is dropped when it is all the handler sends: a return code', async () => {
    const { server, errors, runs } = await askServer('LateCode', async (_payload, ctx) => {
      await ctx.reply(7);
    });
    expect(runs()).toBe(1);
    expect(server.stats).toMatchObject({ handled: 1, undeliverableReplies: 1 });
    expect(errors.messages).toEqual([]);
    await errors.close();
  });

  it('a send to a queue that does not exist still fails the attempt: it is a route to fix', async () => {
    const { server, errors } = await askServer('MissingSend', async (_payload, ctx) => {
      await ctx.send(Noted, { n: 1 }, { to: 'MissingSend.nowhere' });
    });
    expect(server.stats).toMatchObject({
      handled: 0,
      movedToErrorQueue: 1,
      undeliverableReplies: 0,
    });
    await expect.poll(() => errors.messages.length).toBe(1);
    expect(errors.messages[0]?.headers[Headers.ExceptionType]).toBe('DestinationNotFoundError');
    await errors.close();
  });
});
