import { afterEach, describe, expect, it } from 'vitest';
import {
  createInMemoryTransport,
  defineMessage,
  type Transport,
  UsageError,
} from '../src/index.ts';
import { world } from './helpers.ts';

const Job = defineMessage<{ n: number }>('limits.Job');

/** An in-memory transport declaring the limits a broker like RabbitMQ has, only smaller. */
function limitedTransport(): Transport {
  const inner = createInMemoryTransport();
  return {
    spiVersion: inner.spiVersion,
    name: 'limited',
    capabilities: {
      ...inner.capabilities,
      maxMessageIdBytes: 40,
      maxHeaderNameBytes: 40,
      maxDelayMs: 1000,
    },
    openEndpoint: (topology, context) => inner.openEndpoint(topology, context),
  };
}

describe('limits a transport declares are checked by core before dispatch', () => {
  let w = world();
  afterEach(async () => {
    await w.stopAll();
    w = world();
  });

  it('refuses a message id, a header name or a delay over the limit with UsageError', async () => {
    const transport = limitedTransport();
    const server = w.endpoint({ name: 'LimitsServer', transport });
    const got: string[] = [];
    server.handle(Job, (_job, ctx) => void got.push(ctx.messageId));
    const client = w.endpoint({ name: 'LimitsClient', transport });
    await server.start();
    await client.start();
    const to = 'LimitsServer';

    await expect(client.send(Job, { n: 1 }, { to, messageId: 'x'.repeat(41) })).rejects.toThrow(
      UsageError,
    );
    // Counted in UTF-8 bytes: 21 characters, 42 bytes.
    await expect(client.send(Job, { n: 1 }, { to, messageId: 'é'.repeat(21) })).rejects.toThrow(
      /42 bytes.*at most 40/,
    );
    await expect(
      client.send(Job, { n: 1 }, { to, headers: { ['x-'.padEnd(41, 'y')]: 'v' } }),
    ).rejects.toThrow(UsageError);
    await expect(client.send(Job, { n: 1 }, { to, delayMs: 1001 })).rejects.toThrow(UsageError);
    await expect(client.request(Job, { n: 1 }, { to, messageId: 'r'.repeat(41) })).rejects.toThrow(
      UsageError,
    );

    // At the limit: sent.
    await client.send(Job, { n: 1 }, { to, messageId: 'x'.repeat(40) });
    await client.send(Job, { n: 2 }, { to, headers: { ['x-'.padEnd(40, 'y')]: 'v' } });
    await client.send(Job, { n: 3 }, { to, messageId: 'delayed-3', delayMs: 1000 });
    await expect.poll(() => got.length).toBe(2);
    expect(got).toContain('x'.repeat(40));
  });
});
