import { beforeEach, describe, expect, it } from 'vitest';
import type { ScopeHelpers } from '../scope.js';
import { type SuiteContext, sleep } from './context.js';
import { Ping, Pong, Work } from './messages.js';

/** Stopping an endpoint: nothing lost mid-stream, pending requests rejected. */
export function describeLifecycle({ current, wait, server, client }: SuiteContext): void {
  describe('lifecycle', () => {
    let t: ScopeHelpers;
    beforeEach(() => {
      t = current();
    });

    it('stop() during a stream loses nothing: another instance takes the rest', async () => {
      const seen = new Set<number>();
      let handled = 0;
      const handler = async (p: { n: number }) => {
        await sleep(2);
        seen.add(p.n);
        handled++;
      };
      const first = await t.started('Server', { instanceId: 'first', concurrency: 8 }, (e) =>
        e.handle(Work, handler),
      );
      const sender = await client();
      const total = 300;
      await Promise.all(Array.from({ length: total }, (_, n) => sender.send(Work, { n })));
      await expect.poll(() => handled, wait).toBeGreaterThan(20);
      await first.stop();
      const afterStop = handled;
      expect(first.stats.inFlight).toBe(0);
      await t.started('Server', { instanceId: 'second', concurrency: 8 }, (e) =>
        e.handle(Work, handler),
      );
      await expect.poll(() => seen.size, wait).toBe(total);
      expect(afterStop).toBeLessThanOrEqual(total);
    });

    it('stop() rejects pending requests with a typed error and leaves the registry empty', async () => {
      await server((e) => e.handle(Ping, async () => new Promise<void>(() => {})), {
        stopTimeoutMs: 200,
      });
      const c = await client();
      const pending = c.request(Ping, { n: 1 }, { expect: Pong });
      // Observe the rejection before stopping: stop() rejects it, then awaits the transport's close.
      const rejected = expect(pending).rejects.toMatchObject({
        code: 'TIDINGS_ENDPOINT_STOPPED',
      });
      await expect.poll(() => c.stats.pendingRequests, wait).toBe(1);
      await c.stop();
      await rejected;
      expect(c.stats.pendingRequests).toBe(0);
    });
  });
}
