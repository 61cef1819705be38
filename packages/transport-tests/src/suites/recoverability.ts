import { type Endpoint, Headers, returnToSourceQueue } from '@tidings/core';
import { PACKED_HEADERS } from '@tidings/core/transport';
import { beforeEach, describe, expect, it } from 'vitest';
import type { PackedHeadersAccess } from '../describe-transport.js';
import type { ScopeHelpers } from '../scope.js';
import type { SuiteContext } from './context.js';
import { Happened, Work } from './messages.js';

/** Retries, then the error queue; unreadable messages; returning failed messages to their queue. */
export function describeRecoverability({
  current,
  options,
  caps,
  scale,
  wait,
  server,
  client,
}: SuiteContext): void {
  describe('recoverability', () => {
    let t: ScopeHelpers;
    beforeEach(() => {
      t = current();
    });

    it('retries, then moves the message to the error queue with failure headers', async () => {
      let attempts = 0;
      const delayed = caps.delayedDelivery ? 1 : 0;
      const errors = await t.readQueue(t.errorQueue);
      await server(
        (e) =>
          e.handle(Work, () => {
            attempts++;
            throw new TypeError(`boom ${attempts}`);
          }),
        {
          recoverability: {
            immediateRetries: 2,
            delayedRetries: { count: delayed, delayMs: 200 },
          },
        },
      );
      const sender = await client();
      await sender.send(Work, { n: 1 }, { messageId: `${t.scope.id}-fail` });
      await expect.poll(() => errors.messages.length, wait).toBe(1);
      expect(attempts).toBe(3 * (1 + delayed));
      const failed = errors.messages[0];
      const h = failed?.headers ?? {};
      expect(h[Headers.MessageId]).toBe(`${t.scope.id}-fail`);
      expect(h[Headers.ExceptionType]).toBe('TypeError');
      expect(h[Headers.ExceptionMessage]).toBe(`boom ${attempts}`);
      expect(h[Headers.ExceptionStack]).toContain('TypeError');
      expect(h[Headers.FailedQueue]).toBe(t.name('Server'));
      expect(Number.isNaN(Date.parse(h[Headers.TimeOfFailure] ?? ''))).toBe(false);
      expect(JSON.parse(Buffer.from(failed?.body ?? []).toString())).toEqual({ n: 1 });
    });

    it('malformed, hostile and headerless messages go to the error queue; the endpoint keeps going', async () => {
      const got: number[] = [];
      const errors = await t.readQueue(t.errorQueue);
      // Transports with a dead-letter queue of their own test that path themselves.
      const srv = await server((e) => e.handle(Work, (p) => void got.push(p.n)), {
        recoverability: { unreadableMessages: 'error-queue' },
      });
      const raw = await t.rawSender();
      const headers = (id: string) => ({
        [Headers.MessageId]: `${t.scope.id}-${id}`,
        [Headers.MessageType]: Work.name,
        [Headers.ContentType]: 'application/json',
      });
      const to = { kind: 'queue', queue: t.name('Server') } as const;
      await raw.dispatch([
        {
          message: { messageId: 'a', headers: headers('bad-json'), body: Buffer.from('{"n": 1') },
          destination: to,
        },
        {
          message: {
            messageId: 'b',
            headers: headers('proto'),
            body: Buffer.from('{"n":2,"__proto__":{"polluted":true}}'),
          },
          destination: to,
        },
        {
          message: {
            messageId: 'c',
            headers: { [Headers.MessageId]: `${t.scope.id}-no-type` },
            body: Buffer.from('{"n":3}'),
          },
          destination: to,
        },
        {
          message: {
            messageId: 'd',
            headers: { ...headers('unknown'), [Headers.MessageType]: 'conformance.Unknown' },
            body: Buffer.from('{"n":4}'),
          },
          destination: to,
        },
        {
          message: { messageId: 'e', headers: headers('good'), body: Buffer.from('{"n":5}') },
          destination: to,
        },
      ]);
      await expect.poll(() => errors.messages.length, wait).toBe(4);
      await expect.poll(() => got, wait).toEqual([5]);
      const codes = Object.fromEntries(
        errors.messages.map((m) => [
          m.headers[Headers.MessageId],
          m.headers[Headers.ExceptionCode],
        ]),
      );
      expect(codes).toEqual({
        [`${t.scope.id}-bad-json`]: 'TIDINGS_DESERIALIZATION',
        [`${t.scope.id}-proto`]: 'TIDINGS_DESERIALIZATION',
        [`${t.scope.id}-no-type`]: 'TIDINGS_MALFORMED_MESSAGE',
        [`${t.scope.id}-unknown`]: 'TIDINGS_NO_HANDLER',
      });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(srv.stats.movedToErrorQueue).toBe(4);
    });

    it('returnToSourceQueue sends failed messages back to their queue; what the filter leaves stays', async () => {
      let fixed = false;
      const handled: Array<{ id: string; headers: Record<string, string> }> = [];
      const srv = await server(
        (e) =>
          e.handle(Work, (work, ctx) => {
            if (!fixed) throw new Error(`not yet: ${work.n}`);
            handled.push({ id: ctx.messageId, headers: { ...ctx.headers } });
          }),
        { recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } } },
      );
      const sender = await client();
      const id = (n: number) => `${t.scope.id}-back${n}`;
      for (const n of [1, 2, 3]) await sender.send(Work, { n }, { messageId: id(n) });
      await expect.poll(() => srv.stats.movedToErrorQueue, wait).toBe(3);

      // The bug is fixed; return all but the third.
      fixed = true;
      const transport = await options.makeTransport(t.scope);
      t.scope.transports.push(transport);
      const result = await returnToSourceQueue({
        transport,
        errorQueue: t.errorQueue,
        filter: (failed) => failed.messageId !== id(3),
        // Counted from when the error queue is being read: a Kafka group's join takes longer.
        idleMs: 1_000 * scale,
      });
      expect(result).toEqual({ returned: 2, kept: 1 });
      await expect.poll(() => handled.map((h) => h.id).sort(), wait).toEqual([id(1), id(2)]);
      for (const { headers } of handled) {
        expect(headers[Headers.FailedQueue]).toBeUndefined();
        expect(headers[Headers.ExceptionMessage]).toBeUndefined();
        expect(headers[Headers.MessageType]).toBe(Work.name);
        expect(headers[Headers.Returns]).toBe('1');
      }
      const errors = await t.readQueue(t.errorQueue);
      await expect.poll(() => errors.messages.map((m) => m.messageId), wait).toEqual([id(3)]);
      expect(errors.messages[0]?.headers[Headers.FailedQueue]).toBe(t.name('Server'));
      expect(errors.messages[0]?.headers[Headers.ExceptionMessage]).toBe('not yet: 3');
    });
  });
}

/**
 * A transport that packs headers keeps a malformed message byte for byte in the error queue
 * (skipped without `packed`).
 */
export function describeErrorQueueKeepsPacked({
  current,
  options,
  scale,
  wait,
  server,
}: SuiteContext): void {
  describe.skipIf(options.packed === undefined)(
    'the error queue keeps the message as it came',
    () => {
      let t: ScopeHelpers;
      beforeEach(() => {
        t = current();
      });

      it(
        'a malformed tidings.headers stays byte for byte, the failure headers each an entry; returned, it goes back as it came',
        async () => {
          const packed = options.packed as PackedHeadersAccess;
          const srv = await server((e) => e.handle(Work, () => {}), {
            recoverability: { unreadableMessages: 'error-queue' },
          });
          const id = (n: number) => `${t.scope.id}-malformed-packed${n}`;
          const malformed = '{"message-type":"conformance.Work","intent":"send"';
          for (const n of [1, 2]) {
            await packed.send(
              t.scope,
              t.name('Server'),
              { [Headers.MessageId]: id(n), [PACKED_HEADERS]: malformed, 'x-user': 'kept' },
              Buffer.from(`{"n":${n}}`),
            );
          }
          await expect.poll(() => srv.stats.movedToErrorQueue, wait).toBe(2);
          await srv.stop();
          let native: Record<string, string> | undefined;
          const peeked =
            (queue: string, ready: (h: Record<string, string>) => boolean = () => true) =>
            async () => {
              native = await packed.peek(t.scope, queue, id(1));
              return native !== undefined && ready(native);
            };
          // A native peek can cost a consumer group join (Kafka): allow it a few of them.
          const peekWait = { timeout: wait.timeout * 3, interval: 200 };
          await expect.poll(peeked(t.errorQueue), peekWait).toBe(true);
          expect(native?.[PACKED_HEADERS]).toBe(malformed);
          expect(native?.['x-user']).toBe('kept');
          expect(native?.[Headers.FailedQueue]).toBe(t.name('Server'));
          expect(native?.[Headers.ExceptionCode]).toBe('TIDINGS_MALFORMED_MESSAGE');
          expect(native?.[Headers.ExceptionType]).toBe('MalformedMessageError');
          expect(native?.[Headers.ExceptionMessage]).toContain(PACKED_HEADERS);
          expect(native?.[Headers.TimeOfFailure]).toBeDefined();

          // Returned, it goes back without its failure headers and otherwise as it came.
          const transport = await options.makeTransport(t.scope);
          t.scope.transports.push(transport);
          const result = await returnToSourceQueue({
            transport,
            errorQueue: t.errorQueue,
            filter: (failed) => failed.messageId === id(1),
            idleMs: 1_000 * scale,
          });
          expect(result).toEqual({ returned: 1, kept: 1 });
          // (Kafka keeps the first send in the topic too: the latest is the returned one.)
          await expect
            .poll(
              peeked(t.name('Server'), (h) => h[Headers.Returns] !== undefined),
              peekWait,
            )
            .toBe(true);
          expect(native?.[PACKED_HEADERS]).toBe(malformed);
          expect(native?.['x-user']).toBe('kept');
          expect(native?.[Headers.Returns]).toBe('1');
          expect(native?.[Headers.FailedQueue]).toBeUndefined();
          expect(native?.[Headers.ExceptionCode]).toBeUndefined();

          // Through the transport, the failure headers read as they do for any message.
          const errors = await t.readQueue(t.errorQueue);
          await expect.poll(() => errors.messages.length, wait).toBe(1);
          const copy = errors.messages[0];
          expect(copy?.messageId).toBe(id(2));
          expect(copy?.headers[Headers.FailedQueue]).toBe(t.name('Server'));
          expect(copy?.headers[Headers.ExceptionCode]).toBe('TIDINGS_MALFORMED_MESSAGE');
          expect(copy?.headers['x-user']).toBe('kept');
          expect(copy?.unreadableReason).toContain(PACKED_HEADERS);
          expect(Buffer.from(copy?.body ?? []).toString()).toBe('{"n":2}');
        },
        180_000 * scale,
      );
    },
  );
}

/** An event that failed in two subscribers is returned to both. */
export function describeReturningEventFromTwoEndpoints({
  current,
  options,
  scale,
  wait,
}: SuiteContext): void {
  describe('returning an event that failed in two endpoints', () => {
    let t: ScopeHelpers;
    beforeEach(() => {
      t = current();
    });

    it('returnToSourceQueue returns both copies: one message id, two failed queues', async () => {
      let fixed = false;
      const handled: string[] = [];
      const failing = (which: string) => (e: Endpoint) =>
        e.handle(Happened, (event) => {
          if (!fixed) throw new Error(`not yet: ${which}`);
          handled.push(`${which} ${event.n}`);
        });
      const noRetries = { recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } } };
      const a = await t.started('SubA', noRetries, failing('a'));
      const b = await t.started('SubB', noRetries, failing('b'));
      const publisher = await t.started('Publisher', { sendOnly: true });
      await publisher.publish(Happened, { n: 1 }, { messageId: `${t.scope.id}-event` });
      await expect.poll(() => a.stats.movedToErrorQueue + b.stats.movedToErrorQueue, wait).toBe(2);

      fixed = true;
      const transport = await options.makeTransport(t.scope);
      t.scope.transports.push(transport);
      const result = await returnToSourceQueue({
        transport,
        errorQueue: t.errorQueue,
        idleMs: 1_000 * scale,
      });
      expect(result).toEqual({ returned: 2, kept: 0 });
      await expect.poll(() => [...handled].sort(), wait).toEqual(['a 1', 'b 1']);
    });
  });
}
