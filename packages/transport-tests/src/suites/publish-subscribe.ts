import { beforeEach, describe, expect, it } from 'vitest';
import type { ScopeHelpers } from '../scope.js';
import { type SuiteContext, sleep } from './context.js';
import { Happened, Work } from './messages.js';

/** An event reaches every subscriber once and no one else. */
export function describePublishSubscribe({ current, scale, wait }: SuiteContext): void {
  describe('publish and subscribe', () => {
    let t: ScopeHelpers;
    beforeEach(() => {
      t = current();
    });

    it('delivers an event once to every subscribing endpoint and to no other', async () => {
      const got = { a: 0, b: 0, other: 0 };
      await t.started('SubA', {}, (e) => e.handle(Happened, () => void got.a++));
      await t.started('SubB', {}, (e) => e.handle(Happened, () => void got.b++));
      await t.started('NotSubscribed', {}, (e) => e.handle(Work, () => void got.other++));
      const publisher = await t.started('Publisher', { sendOnly: true });
      await publisher.publish(Happened, { n: 1 });
      await expect.poll(() => got.a + got.b, wait).toBe(2);
      await sleep(200 * scale);
      expect(got).toEqual({ a: 1, b: 1, other: 0 });
    });
  });
}
