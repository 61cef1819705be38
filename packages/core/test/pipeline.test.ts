import { afterEach, describe, expect, it } from 'vitest';
import { defineMessage } from '../src/index.ts';
import { runMiddleware } from '../src/pipeline/middleware.ts';
import { world } from './helpers.ts';

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
    ).rejects.toThrow(/more than once/);
  });
});
