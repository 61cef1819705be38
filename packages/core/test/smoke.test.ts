import { describe, expect, it } from 'vitest';
import {
  createEndpoint,
  createInMemoryTransport,
  defineMessage,
  silentLogger,
} from '../src/index.ts';

const Ping = defineMessage<{ n: number }>('test.Ping');
const Pong = defineMessage<{ n: number }>('test.Pong');

describe('smoke', () => {
  it('request/reply and full duplex', async () => {
    const transport = createInMemoryTransport();
    const server = createEndpoint({ name: 'Server', transport, logger: silentLogger });
    server.handle(Ping, async (p, ctx) => {
      await ctx.reply(Pong, { n: p.n + 1 });
    });
    await server.start();
    const got: number[] = [];
    const client = createEndpoint({
      name: 'Client',
      transport,
      logger: silentLogger,
      routes: { [Ping.name]: 'Server' },
    });
    client.handle(Pong, (p) => {
      got.push(p.n);
    });
    await client.start();
    const pong = await client.request(Ping, { n: 1 }, { expect: Pong });
    expect(pong).toEqual({ n: 2 });
    await client.send(Ping, { n: 10 });
    await expect.poll(() => got).toContain(11);
    const r = await client
      .send(Ping, { n: 5 })
      .register(
        (reply, s) => (reply.kind === 'message' ? `${s}${(reply.body as { n: number }).n}` : ''),
        'x',
      );
    expect(r).toBe('x6');
    expect(client.stats.pendingRequests).toBe(0);
    await client.stop();
    await server.stop();
  });
});
