import { defineMessage } from '@tidings/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testWorld } from './helpers.ts';
import { brokers } from './kafka-test-options.ts';
import { proxyCluster } from './tcp-proxy.ts';

const Work = defineMessage<{ n: number }>('commits.Work');
const wait = { timeout: 45_000, interval: 50 };

describe('commits', () => {
  let world: ReturnType<typeof testWorld>;
  const cleanups: Array<() => Promise<void>> = [];
  beforeEach(() => {
    world = testWorld();
  });
  afterEach(async () => {
    await world.dispose();
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  it('positions whose commit failed are committed later: a graceful stop leaves nothing to replay', async () => {
    const proxy = await proxyCluster(brokers());
    cleanups.push(() => proxy.close());
    const first: number[] = [];
    const server = world.endpoint('Server', {
      transport: world.transport({
        brokers: proxy.brokers,
        mapBrokerAddress: proxy.mapBrokerAddress,
      }),
    });
    server.handle(Work, (p) => void first.push(p.n));
    await server.start();
    const sender = world.endpoint('Sender', {
      sendOnly: true,
      routes: { [Work.name]: world.name('Server') },
    });
    await sender.start();
    // Joined and committing.
    await sender.send(Work, { n: 0 });
    await expect.poll(() => first, wait).toEqual([0]);

    // Every commit is refused while the records are handled, as while the group rebalances.
    proxy.failCommits(true);
    for (let n = 1; n <= 12; n++) await sender.send(Work, { n });
    await expect.poll(() => first.length, wait).toBe(13);
    // A commit of the last position fails too.
    const failed = proxy.commitsFailed;
    await expect.poll(() => proxy.commitsFailed, wait).toBeGreaterThan(failed);
    proxy.failCommits(false);
    await server.stop();

    // The next owner of the partitions starts after the handled records.
    const second: number[] = [];
    const next = world.endpoint('Server');
    next.handle(Work, (p) => void second.push(p.n));
    await next.start();
    await sender.send(Work, { n: 100 });
    await expect.poll(() => second.includes(100), wait).toBe(true);
    expect(second).toEqual([100]);
  });
});
