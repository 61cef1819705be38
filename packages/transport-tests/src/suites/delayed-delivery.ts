import { describe, expect, it } from 'vitest';
import type { SuiteContext } from './context.js';
import { Work } from './messages.js';

/** A delayed send arrives no earlier than due (skipped without `delayedDelivery`). */
export function describeDelayedDelivery({ caps, wait, server, client }: SuiteContext): void {
  describe.skipIf(!caps.delayedDelivery)('delayed delivery', () => {
    it('delivers a delayed send no earlier than due', async () => {
      const arrivals: number[] = [];
      await server((e) => e.handle(Work, () => void arrivals.push(Date.now())));
      const sender = await client();
      const sentAt = Date.now();
      await sender.send(Work, { n: 1 }, { delayMs: 1500 });
      await sender.send(Work, { n: 2 });
      await expect.poll(() => arrivals.length, wait).toBe(2);
      const [immediate, later] = arrivals as [number, number];
      expect(immediate - sentAt).toBeLessThan(1500);
      // Brokers round delays to their own clocks; never early by more than their granularity.
      expect(later - sentAt).toBeGreaterThanOrEqual(1000);
    });
  });
}
