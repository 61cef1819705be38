import { Headers, MessageTooLargeError, NoRouteError, UsageError } from '@tidings/core';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ScopeHelpers } from '../scope.js';
import { type SuiteContext, sleep } from './context.js';
import { Big, Other, Work } from './messages.js';

/**
 * Headers on the wire, ids flowing from a handler, competing consumers, routing, size and name
 * limits, concurrency.
 */
export function describeSendAndReceive({
  current,
  caps,
  scale,
  wait,
  server,
  client,
}: SuiteContext): void {
  describe('send and receive', () => {
    let t: ScopeHelpers;
    beforeEach(() => {
      t = current();
    });

    it('delivers the payload with every bus header', async () => {
      const received: Array<{ payload: unknown; headers: Record<string, string>; ctx: unknown }> =
        [];
      await server((e) =>
        e.handle(Work, (payload, ctx) => {
          received.push({
            payload,
            headers: { ...ctx.headers },
            ctx: {
              messageId: ctx.messageId,
              correlationId: ctx.correlationId,
              conversationId: ctx.conversationId,
              replyTo: ctx.replyTo,
              messageType: ctx.messageType,
            },
          });
        }),
      );
      const sender = await client();
      await sender.send(
        Work,
        { n: 42 },
        { headers: { 'x-tenant': 'acme' }, messageId: `${t.scope.id}-m1` },
      );
      await expect.poll(() => received.length, wait).toBe(1);
      const [got] = received;
      expect(got?.payload).toEqual({ n: 42 });
      const h = got?.headers ?? {};
      expect(h[Headers.MessageId]).toBe(`${t.scope.id}-m1`);
      expect(h[Headers.CorrelationId]).toBe(`${t.scope.id}-m1`);
      expect(h[Headers.ConversationId]).toBeTruthy();
      expect(h[Headers.MessageType]).toBe(Work.name);
      expect(h[Headers.ContentType]).toBe('application/json');
      expect(h[Headers.Intent]).toBe('send');
      expect(h[Headers.ReplyTo]).toBe(sender.inputQueue);
      expect(h[Headers.OriginatingEndpoint]).toBe(sender.name);
      expect(Number.isNaN(Date.parse(h[Headers.TimeSent] ?? ''))).toBe(false);
      expect(h['x-tenant']).toBe('acme');
      expect(got?.ctx).toEqual({
        messageId: `${t.scope.id}-m1`,
        correlationId: `${t.scope.id}-m1`,
        conversationId: h[Headers.ConversationId],
        replyTo: sender.inputQueue,
        messageType: Work.name,
      });
    });

    it('flows correlation and conversation ids to messages sent from a handler', async () => {
      const seen: Array<Record<string, string>> = [];
      await server((e) => {
        e.handle(Work, async (p, ctx) => {
          await ctx.send(Other, { n: p.n }, { to: t.name('Downstream') });
        });
      });
      await t.started('Downstream', {}, (e) =>
        e.handle(Other, (_p, ctx) => void seen.push({ ...ctx.headers })),
      );
      const sender = await client();
      await sender.send(Work, { n: 1 }, { messageId: `${t.scope.id}-root` });
      await expect.poll(() => seen.length, wait).toBe(1);
      expect(seen[0]?.[Headers.CorrelationId]).toBe(`${t.scope.id}-root`);
      expect(seen[0]?.[Headers.ConversationId]).toBe(`${t.scope.id}-root`);
      expect(seen[0]?.[Headers.MessageId]).not.toBe(`${t.scope.id}-root`);
    });

    it('competing consumers: two instances of one endpoint handle each message once', async () => {
      const seen = new Map<number, number>();
      const count = (p: { n: number }) => void seen.set(p.n, (seen.get(p.n) ?? 0) + 1);
      await t.started('Server', { instanceId: 'a' }, (e) => e.handle(Work, count));
      await t.started('Server', { instanceId: 'b' }, (e) => e.handle(Work, count));
      const sender = await client();
      await Promise.all(Array.from({ length: 200 }, (_, n) => sender.send(Work, { n })));
      await expect.poll(() => seen.size, wait).toBe(200);
      await sleep(200 * scale);
      expect([...seen.values()].every((times) => times === 1)).toBe(true);
    });

    it('fails a send with no route with NoRouteError naming the type', async () => {
      const sender = await t.started('Lonely');
      // The error arrives through the promise, like every other send failure.
      await expect(sender.send(Work, { n: 1 })).rejects.toThrow(NoRouteError);
      await expect(sender.send(Work, { n: 1 })).rejects.toThrow(Work.name);
    });

    it('refuses an oversized message before sending it', async () => {
      let received = 0;
      await server((e) => e.handle(Big, () => void received++));
      const sender = await client();
      const data = 'x'.repeat(caps.maxMessageSizeBytes + 1);
      await expect(sender.send(Big, { data })).rejects.toBeInstanceOf(MessageTooLargeError);
      await sender.send(Big, { data: 'small' });
      await expect.poll(() => received, wait).toBe(1);
      await sleep(100 * scale);
      expect(received).toBe(1);
    });

    it.skipIf(caps.maxMessageIdBytes === undefined)(
      'refuses a message id over maxMessageIdBytes with UsageError before sending; one at the limit arrives',
      async () => {
        const limit = caps.maxMessageIdBytes as number;
        const got: string[] = [];
        await server((e) => e.handle(Work, (_payload, ctx) => void got.push(ctx.messageId)));
        const sender = await client();
        const atLimit = `${t.scope.id}-`.padEnd(limit, 'i');
        await expect(
          sender.send(Work, { n: 1 }, { messageId: `${atLimit}i` }),
        ).rejects.toBeInstanceOf(UsageError);
        await sender.send(Work, { n: 2 }, { messageId: atLimit });
        await expect.poll(() => got, wait).toEqual([atLimit]);
      },
    );

    it.skipIf(caps.maxHeaderNameBytes === undefined)(
      'refuses a header name over maxHeaderNameBytes with UsageError before sending; one at the limit arrives',
      async () => {
        const limit = caps.maxHeaderNameBytes as number;
        const got: Array<Record<string, string>> = [];
        await server((e) => e.handle(Work, (_payload, ctx) => void got.push({ ...ctx.headers })));
        const sender = await client();
        const atLimit = 'x-'.padEnd(limit, 'h');
        await expect(
          sender.send(Work, { n: 1 }, { headers: { [`${atLimit}h`]: 'v' } }),
        ).rejects.toBeInstanceOf(UsageError);
        await sender.send(Work, { n: 2 }, { headers: { [atLimit]: 'v' } });
        await expect.poll(() => got.length, wait).toBe(1);
        expect(got[0]?.[atLimit]).toBe('v');
      },
    );

    it.skipIf(caps.maxDelayMs === undefined)(
      'refuses a delay over maxDelayMs with UsageError before sending',
      async () => {
        await server((e) => e.handle(Work, () => {}));
        const sender = await client();
        const delayMs = (caps.maxDelayMs as number) + 1;
        await expect(sender.send(Work, { n: 1 }, { delayMs })).rejects.toBeInstanceOf(UsageError);
      },
    );

    it('honours the concurrency limit', async () => {
      let active = 0;
      let peak = 0;
      let done = 0;
      await server(
        (e) =>
          e.handle(Work, async () => {
            active++;
            peak = Math.max(peak, active);
            await sleep(40);
            active--;
            done++;
          }),
        { concurrency: 4 },
      );
      const sender = await client();
      await Promise.all(Array.from({ length: 24 }, (_, n) => sender.send(Work, { n })));
      await expect.poll(() => done, wait).toBe(24);
      expect(peak).toBe(4);
    });
  });
}
