import { afterEach, describe, expect, it } from 'vitest';
import { defineMessage, Headers, RequestAbortedError, UsageError } from '../src/index.ts';
import { runMiddleware } from '../src/pipeline/middleware.ts';
import { readQueue, world } from './helpers.ts';

const Ping = defineMessage<{ n: number }>('t.Ping');

describe('middleware', () => {
  const w = world();
  afterEach(() => w.stopAll());

  it('runs incoming middleware in order around the handlers and lets it replace the payload', async () => {
    const trace: string[] = [];
    const server = w.endpoint({ name: 'Mw' });
    server.useIncoming(async (ctx, next) => {
      trace.push(`outer>${ctx.messageType}`);
      await next();
      trace.push('outer<');
    });
    server.useIncoming(async (ctx, next) => {
      ctx.payload = { n: (ctx.payload as { n: number }).n * 2 };
      await next();
    });
    server.handle(Ping, (p) => void trace.push(`handler ${p.n}`));
    await server.start();
    const client = w.endpoint({ name: 'MwClient', sendOnly: true });
    client.useOutgoing(async (ctx, next) => {
      ctx.headers['x-trace'] = `sent-${ctx.messageType}`;
      await next();
    });
    await client.start();
    await client.send(Ping, { n: 21 }, { to: 'Mw' });
    await expect.poll(() => trace).toEqual(['outer>t.Ping', 'handler 42', 'outer<']);
  });

  it('outgoing middleware headers reach the receiver', async () => {
    const seen: Array<string | undefined> = [];
    const server = w.endpoint({ name: 'Hdr' });
    server.handle(Ping, (_p, ctx) => void seen.push(ctx.headers['x-tenant']));
    await server.start();
    const client = w.endpoint({ name: 'HdrClient', sendOnly: true });
    client.useOutgoing(async (ctx, next) => {
      ctx.headers['x-tenant'] = 'acme';
      await next();
    });
    await client.start();
    await client.send(Ping, { n: 1 }, { to: 'Hdr' });
    await expect.poll(() => seen).toEqual(['acme']);
  });

  it('refuses next() twice', async () => {
    await expect(
      runMiddleware(
        [
          async (_c, next) => {
            await next();
            await next();
          },
        ],
        {},
        async () => {},
      ),
    ).rejects.toThrow(UsageError);
  });

  it('incoming middleware calling next() twice sends the message straight to the error queue', async () => {
    let runs = 0;
    const server = w.endpoint({ name: 'TwiceNext' });
    server.useIncoming(async (_ctx, next) => {
      await next();
      await next();
    });
    server.handle(Ping, () => void runs++);
    await server.start();
    const errors = await readQueue(w.transport, 'error');
    const client = w.endpoint({ name: 'TwiceNextClient', sendOnly: true });
    await client.start();
    await client.send(Ping, { n: 1 }, { to: 'TwiceNext' });
    await expect.poll(() => errors.messages.length).toBe(1);
    // Not retried: the same middleware would call it twice again.
    expect(runs).toBe(1);
    expect(server.stats.immediateRetries).toBe(0);
    expect(errors.messages[0]?.headers[Headers.ExceptionType]).toBe('UsageError');
    await errors.close();
  });

  it('outgoing middleware that does not call next() sends nothing, and the send resolves', async () => {
    const seen: number[] = [];
    const server = w.endpoint({ name: 'Dropped' });
    server.handle(Ping, (p) => {
      seen.push(p.n);
    });
    await server.start();
    const errors = await readQueue(w.transport, 'error');
    const dropNegative = async (ctx: { payload: unknown }, next: () => Promise<void>) => {
      if ((ctx.payload as { n: number }).n >= 0) await next();
    };
    const client = w.endpoint({ name: 'DroppedClient', routes: { [Ping.name]: 'Dropped' } });
    client.useOutgoing(dropNegative);
    await client.start();
    await expect(client.send(Ping, { n: -1 })).resolves.toBeUndefined();
    await expect(client.publish(Ping, { n: -1 })).resolves.toBeUndefined();
    // No reply can come to a request that was not sent: it ends at once, not at its timeout.
    const request = await client
      .request(Ping, { n: -2 }, { timeoutMs: 60_000 })
      .catch((error: unknown) => error);
    expect(request).toBeInstanceOf(RequestAbortedError);
    expect((request as Error).message).toContain('did not call next()');
    expect(client.stats.pendingRequests).toBe(0);
    await client.send(Ping, { n: 1 });
    await expect.poll(() => seen).toEqual([1]);
    expect(errors.messages).toEqual([]);
    await errors.close();
  });

  it('a handler send dropped by outgoing middleware leaves the others to go', async () => {
    const seen: number[] = [];
    const server = w.endpoint({ name: 'DroppedInHandler' });
    server.useOutgoing(async (ctx, next) => {
      if ((ctx.payload as { n: number }).n >= 0) await next();
    });
    server.handle(Ping, async (p, ctx) => {
      seen.push(p.n);
      if (p.n === 1) {
        await ctx.send(Ping, { n: -1 }, { to: 'DroppedInHandler' });
        await ctx.send(Ping, { n: 2 }, { to: 'DroppedInHandler' });
      }
    });
    await server.start();
    const errors = await readQueue(w.transport, 'error');
    const client = w.endpoint({ name: 'DroppedInHandlerClient', sendOnly: true });
    await client.start();
    await client.send(Ping, { n: 1 }, { to: 'DroppedInHandler' });
    await expect.poll(() => server.stats.handled).toBe(2);
    expect(seen).toEqual([1, 2]);
    expect(server.stats.movedToErrorQueue).toBe(0);
    expect(errors.messages).toEqual([]);
    await errors.close();
  });
});
