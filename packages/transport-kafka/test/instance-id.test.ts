import { defineMessage, type Logger, silentLogger } from '@tidings/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testWorld } from './helpers.ts';

const Ping = defineMessage<{ n: number }>('instance.Ping');
const Pong = defineMessage<{ n: number }>('instance.Pong');
const wait = { timeout: 45_000, interval: 50 };

/** A logger that keeps its errors. */
function errorsLogger(): Logger & { readonly errors: string[] } {
  const errors: string[] = [];
  return { ...silentLogger, errors, error: (message) => void errors.push(message) };
}

describe('instance ids', () => {
  let world: ReturnType<typeof testWorld>;
  beforeEach(() => {
    world = testWorld();
  });
  afterEach(async () => {
    await world.dispose();
  });

  it('a second live process with the same instance id is told so, and the first keeps every reply', async () => {
    const server = world.endpoint('Server');
    server.handle(Ping, (p, ctx) => ctx.reply(Pong, { n: p.n }));
    await server.start();
    const client = (logger: Logger) =>
      world.endpoint('Web', {
        instanceId: 'web-1',
        logger,
        routes: { [Ping.name]: world.name('Server') },
        requestTimeoutMs: 20_000,
      });
    const firstLog = errorsLogger();
    const first = client(firstLog);
    await first.start();
    // Its reply group has joined.
    await first.request(Ping, { n: -1 }, { expect: Pong });

    const secondLog = errorsLogger();
    const second = client(secondLog);
    await second.start();
    await expect.poll(() => secondLog.errors.join('\n'), wait).toContain("instance id 'web-1'");

    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, n) => first.request(Ping, { n }, { expect: Pong })),
    );
    expect(replies.map((r) => r.n)).toEqual(Array.from({ length: 40 }, (_, n) => n));

    // Once the first stops, the second takes the replies over.
    await first.stop();
    const later = await second.request(Ping, { n: 100 }, { expect: Pong });
    expect(later.n).toBe(100);
  });
});
