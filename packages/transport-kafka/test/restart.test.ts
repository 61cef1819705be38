import { defineMessage } from '@tidings/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { kafkaTransportDefaults } from '../src/index.ts';
import { sleep, testWorld } from './helpers.ts';

const Ping = defineMessage<{ n: number }>('restart.Ping');
const Pong = defineMessage<{ n: number }>('restart.Pong');

/**
 * Far longer than any join: a transport that waits for the previous member's session to expire
 * (or for librdkafka's mock cluster, which holds a group its last member left for its session
 * timeout less a second) takes nearly all of it.
 */
const SESSION_TIMEOUT_MS = 40_000;
const WELL_BEFORE = SESSION_TIMEOUT_MS / 2;

describe('a client restarted with its instance id', () => {
  let world: ReturnType<typeof testWorld>;
  beforeEach(() => {
    world = testWorld();
  });
  afterEach(async () => {
    await world.dispose();
  });

  it('gets its first reply and stops well before the previous session could have expired', async () => {
    const server = world.endpoint('Server');
    server.handle(Ping, (p, ctx) => ctx.reply(Pong, { n: p.n }));
    await server.start();
    const client = () =>
      world.endpoint('Web', {
        instanceId: 'web-1',
        routes: { [Ping.name]: world.name('Server') },
        // Times out (the test fails) if the reply waits for the previous member's session.
        requestTimeoutMs: WELL_BEFORE,
        transport: world.transport({
          sessionTimeoutMs: SESSION_TIMEOUT_MS,
          rebalanceTimeoutMs: 2 * SESSION_TIMEOUT_MS,
          instanceSessionTimeoutMs: kafkaTransportDefaults.instanceSessionTimeoutMs,
        }),
      });

    const first = client();
    await first.start();
    expect((await first.request(Ping, { n: 1 }, { expect: Pong })).n).toBe(1);
    await first.stop();

    // Same id, same reply group: its previous member left it a moment ago.
    const second = client();
    await second.start();
    expect((await second.request(Ping, { n: 2 }, { expect: Pong })).n).toBe(2);

    // Its input group is still joining here on the mock (held for the previous member's
    // session timeout): stop does not wait for that join.
    const stopped = await Promise.race([
      second.stop().then(() => 'stopped' as const),
      sleep(WELL_BEFORE).then(() => 'still stopping' as const),
    ]);
    expect(stopped).toBe('stopped');
  }, 120_000);
});
