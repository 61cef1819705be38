import { createInMemoryPersistence, Headers } from '@tidings/core';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ScopeHelpers } from '../scope.js';
import type { SuiteContext } from './context.js';
import { Ping, Work } from './messages.js';

/** With persistence, a redelivered message is handled once and what it sends leaves once. */
export function describeOutboxInbox({ current, wait, server }: SuiteContext): void {
  describe('outbox and inbox (in-memory persistence)', () => {
    let t: ScopeHelpers;
    beforeEach(() => {
      t = current();
    });

    it('a message delivered twice runs its handler once, and what it sends leaves once', async () => {
      const writes: number[] = [];
      const s = await server(
        (e) =>
          e.handle(Work, async (work, ctx) => {
            writes.push(work.n);
            await ctx.send(Ping, { n: work.n }, { to: t.name('Audit') });
          }),
        { persistence: createInMemoryPersistence() },
      );
      const audit = await t.readQueue(t.name('Audit'));
      // The same message twice, as a broker's redelivery after a lost ack would bring it.
      const raw = await t.rawSender();
      const copy = {
        message: {
          messageId: `${t.scope.id}-twice`,
          headers: {
            [Headers.MessageId]: `${t.scope.id}-twice`,
            [Headers.MessageType]: Work.name,
            [Headers.Intent]: 'send',
          },
          body: Buffer.from('{"n":7}'),
        },
        destination: { kind: 'queue', queue: t.name('Server') },
      } as const;
      await raw.dispatch([copy]);
      await expect.poll(() => audit.messages.length, wait).toBe(1);
      await raw.dispatch([copy]);
      await expect.poll(() => s.stats.duplicates, wait).toBe(1);
      expect(writes).toEqual([7]);
      expect(s.stats.handled).toBe(1);
      expect(audit.messages).toHaveLength(1);
    });
  });
}
