import {
  type Endpoint,
  Headers,
  RemoteFailureError,
  ReplyMismatchError,
  RequestAbortedError,
  RequestTimeoutError,
  SendOnlyEndpointError,
} from '@tidings/core';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ScopeHelpers } from '../scope.js';
import type { SuiteContext } from './context.js';
import { Other, Ping, Pong, Status, Work } from './messages.js';

/**
 * Requests and their replies: the instance that asked gets them, codes, mismatches, failures,
 * timeouts, aborts, backpressure, and send-only endpoints.
 */
export function describeRequestReply({ current, wait, server, client }: SuiteContext): void {
  describe('request and reply', () => {
    let t: ScopeHelpers;
    beforeEach(() => {
      t = current();
    });

    const echo = (e: Endpoint) =>
      e.handle(Ping, async (p, ctx) => {
        await ctx.reply(Pong, {
          n: p.n,
          by: e.instanceId ?? '',
          ...(p.from ? { to: p.from } : {}),
        });
      });

    it('replies reach the instance that asked: two client instances, 200 concurrent requests each', async () => {
      await t.started('Server', { instanceId: 's1' }, echo);
      await t.started('Server', { instanceId: 's2' }, echo);
      const one = await client({ instanceId: 'c1' });
      const two = await client({ instanceId: 'c2' });
      const ask = (c: Endpoint) =>
        Promise.all(
          Array.from({ length: 200 }, (_, n) =>
            c.request(Ping, { n, from: c.instanceId as string }, { expect: Pong }),
          ),
        );
      const [a, b] = await Promise.all([ask(one), ask(two)]);
      expect(a.map((r) => r.n)).toEqual(Array.from({ length: 200 }, (_, n) => n));
      expect(a.every((r) => r.to === 'c1')).toBe(true);
      expect(b.every((r) => r.to === 'c2')).toBe(true);
      expect(one.stats.pendingRequests).toBe(0);
      expect(two.stats.pendingRequests).toBe(0);
    });

    it('the first reply wins; a later one reaches the handler for its type', async () => {
      await server((e) =>
        e.handle(Ping, async (p, ctx) => {
          await ctx.reply(Pong, { n: p.n * 10 + 1 });
          await ctx.reply(Pong, { n: p.n * 10 + 2 });
        }),
      );
      const late: number[] = [];
      const c = await client({}, (e) => e.handle(Pong, (p) => void late.push(p.n)));
      const first = await c.request(Ping, { n: 7 }, { expect: Pong });
      // Handlers see every reply, the one the callback took included.
      await expect.poll(() => late.length, wait).toBe(2);
      expect([71, 72]).toContain(first.n);
      expect(late.sort()).toEqual([71, 72]);
      expect(c.stats.pendingRequests).toBe(0);
    });

    it('the callback form: send(...).register(callback, state)', async () => {
      await server(echo);
      const c = await client();
      const result = await c
        .send(Ping, { n: 3 })
        .register(
          (reply, state: string) =>
            reply.kind === 'message' ? `${state}:${(reply.body as { n: number }).n}` : 'code',
          'got',
        );
      expect(result).toBe('got:3');
      expect(c.stats.pendingRequests).toBe(0);
    });

    it('return codes travel as a header with no body', async () => {
      await server((e) =>
        e.handle(Ping, async (p, ctx) => {
          await ctx.reply(p.n % 2 === 0 ? Status.Ok : Status.Rejected);
        }),
      );
      const c = await client();
      expect(await c.request(Ping, { n: 2 }, { expect: 'code' })).toBe(Status.Ok);
      expect(await c.request(Ping, { n: 3 }, { expect: 'code' })).toBe(Status.Rejected);
      expect(await c.request(Ping, { n: 3 })).toMatchObject({
        kind: 'code',
        code: Status.Rejected,
      });
      expect(c.stats.pendingRequests).toBe(0);

      // On the wire: the code in its header, an empty body, no message type.
      const replies = await t.readQueue(t.name('RawReplies'));
      const raw = await t.rawSender();
      await raw.dispatch([
        {
          message: {
            messageId: `${t.scope.id}-raw-ping`,
            headers: {
              [Headers.MessageId]: `${t.scope.id}-raw-ping`,
              [Headers.MessageType]: Ping.name,
              [Headers.Intent]: 'send',
              [Headers.ReplyTo]: t.name('RawReplies'),
            },
            body: Buffer.from('{"n":5}'),
          },
          destination: { kind: 'queue', queue: t.name('Server') },
        },
      ]);
      await expect.poll(() => replies.messages.length, wait).toBe(1);
      const reply = replies.messages[0];
      expect(reply?.headers[Headers.ReturnCode]).toBe(String(Status.Rejected));
      expect(reply?.headers[Headers.Intent]).toBe('reply');
      expect(reply?.headers[Headers.CorrelationId]).toBe(`${t.scope.id}-raw-ping`);
      expect(reply?.headers[Headers.MessageType]).toBeUndefined();
      expect(reply?.body.byteLength).toBe(0);
    });

    it('a reply of the wrong kind rejects with ReplyMismatchError instead of hanging', async () => {
      await server((e) =>
        e.handle(Ping, async (p, ctx) => {
          if (p.n === 1) await ctx.reply(Status.Ok);
          else await ctx.reply(Other, { n: p.n });
        }),
      );
      const c = await client();
      await expect(c.request(Ping, { n: 1 }, { expect: Pong })).rejects.toBeInstanceOf(
        ReplyMismatchError,
      );
      await expect(c.request(Ping, { n: 2 }, { expect: Pong })).rejects.toBeInstanceOf(
        ReplyMismatchError,
      );
      await expect(c.request(Ping, { n: 2 }, { expect: 'code' })).rejects.toBeInstanceOf(
        ReplyMismatchError,
      );
      expect(c.stats.pendingRequests).toBe(0);
    });

    it('a request the server fails for good rejects with RemoteFailureError, not a timeout', async () => {
      await server(
        (e) =>
          e.handle(Ping, async () => {
            throw new TypeError('no stock');
          }),
        { recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } } },
      );
      const c = await client({ requestTimeoutMs: 120_000 });
      const failure = await c
        .request(Ping, { n: 1 }, { expect: Pong })
        .catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(RemoteFailureError);
      expect((failure as RemoteFailureError).fault).toMatchObject({
        messageType: Ping.name,
        exceptionType: 'TypeError',
      });
      expect(c.stats.pendingRequests).toBe(0);
    });

    it('times out with RequestTimeoutError; the late reply goes to the handler, the registry is empty', async () => {
      let release: () => void = () => {};
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      await server((e) =>
        e.handle(Ping, async (p, ctx) => {
          await held;
          await ctx.reply(Pong, { n: p.n });
        }),
      );
      const late: number[] = [];
      const c = await client({}, (e) => e.handle(Pong, (p) => void late.push(p.n)));
      await expect(
        c.request(Ping, { n: 5 }, { expect: Pong, timeoutMs: 300 }),
      ).rejects.toBeInstanceOf(RequestTimeoutError);
      expect(c.stats.pendingRequests).toBe(0);
      release();
      await expect.poll(() => late, wait).toEqual([5]);
      expect(c.stats.pendingRequests).toBe(0);
    });

    it('a late reply with no handler is discarded and counted', async () => {
      let release: () => void = () => {};
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      await server((e) =>
        e.handle(Ping, async (p, ctx) => {
          await held;
          await ctx.reply(Pong, { n: p.n });
        }),
      );
      const c = await client();
      await expect(c.request(Ping, { n: 1 }, { expect: Pong, timeoutMs: 200 })).rejects.toThrow(
        RequestTimeoutError,
      );
      release();
      await expect.poll(() => c.stats.unmatchedReplies, wait).toBe(1);
      expect(c.stats.movedToErrorQueue).toBe(0);
    });

    it('aborts: before the call nothing is sent; in flight it rejects and leaves no entry', async () => {
      const received: number[] = [];
      let release: () => void = () => {};
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      await server((e) =>
        e.handle(Ping, async (p, ctx) => {
          received.push(p.n);
          if (p.n === 2) await held;
          await ctx.reply(Pong, { n: p.n });
        }),
      );
      let sent = 0;
      const c = await client({}, (e) =>
        e.useOutgoing(async (_ctx, next) => {
          sent++;
          await next();
        }),
      );
      const aborted = AbortSignal.abort(new Error('user left'));
      await expect(
        c.request(Ping, { n: 1 }, { expect: Pong, signal: aborted }),
      ).rejects.toBeInstanceOf(RequestAbortedError);
      expect(sent).toBe(0);

      const controller = new AbortController();
      const pending = c.request(Ping, { n: 2 }, { expect: Pong, signal: controller.signal });
      await expect.poll(() => received.includes(2), wait).toBe(true);
      expect(c.stats.pendingRequests).toBe(1);
      controller.abort();
      await expect(pending).rejects.toBeInstanceOf(RequestAbortedError);
      expect(c.stats.pendingRequests).toBe(0);
      release();
      // A later request still works and the aborted-before-the-call one never arrived.
      await expect(c.request(Ping, { n: 3 }, { expect: Pong })).resolves.toEqual({ n: 3 });
      expect(received).not.toContain(1);
    });

    it('maxPendingRequests applies backpressure instead of failing', async () => {
      await server(echo);
      const c = await client({ maxPendingRequests: 5 });
      let peak = 0;
      const probe = setInterval(() => {
        peak = Math.max(peak, c.stats.pendingRequests);
      }, 1);
      const replies = await Promise.all(
        Array.from({ length: 40 }, (_, n) => c.request(Ping, { n }, { expect: Pong })),
      );
      clearInterval(probe);
      expect(replies.map((r) => r.n)).toEqual(Array.from({ length: 40 }, (_, n) => n));
      expect(peak).toBeLessThanOrEqual(5);
      expect(c.stats.pendingRequests).toBe(0);
      expect(c.stats.waitingRequests).toBe(0);
    });

    it('replies have slots of their own: handlers that await requests at full concurrency get their replies', async () => {
      await server(echo);
      let active = 0;
      let peak = 0;
      let allBusy: () => void = () => {};
      const busy = new Promise<void>((resolve) => {
        allBusy = resolve;
      });
      const answered: number[] = [];
      const failed: string[] = [];
      const relay: Endpoint = await t.started(
        'Relay',
        { concurrency: 2, routes: { [Ping.name]: t.name('Server') } },
        (e) =>
          e.handle(Work, async (p) => {
            active++;
            peak = Math.max(peak, active);
            if (active === 2) allBusy();
            try {
              // Every slot of the input queue is held by a handler waiting here before any
              // request goes out: the replies can only come through slots of their own.
              await busy;
              const pong = await relay.request(
                Ping,
                { n: p.n },
                { expect: Pong, timeoutMs: wait.timeout / 2 },
              );
              answered.push(pong.n);
            } catch (error) {
              failed.push(error instanceof Error ? error.name : String(error));
            } finally {
              active--;
            }
          }),
      );
      const sender = await t.started('Sender', {
        sendOnly: true,
        routes: { [Work.name]: t.name('Relay') },
      });
      await Promise.all(Array.from({ length: 6 }, (_, n) => sender.send(Work, { n })));
      await expect.poll(() => answered.length + failed.length, wait).toBe(6);
      expect(failed).toEqual([]);
      expect(answered.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(peak).toBe(2);
    });

    it('a send-only endpoint sends and publishes, and refuses to receive with SendOnlyEndpointError', async () => {
      const got: number[] = [];
      await server((e) => e.handle(Work, (p) => void got.push(p.n)));
      const sendOnly = await t.started('SendOnly', {
        sendOnly: true,
        routes: { [Work.name]: t.name('Server') },
      });
      await sendOnly.send(Work, { n: 1 });
      await expect.poll(() => got, wait).toEqual([1]);
      expect(() => sendOnly.request(Ping, { n: 1 }, { to: t.name('Server') })).toThrow(
        SendOnlyEndpointError,
      );
      expect(() => sendOnly.send(Work, { n: 2 }).register(() => {})).toThrow(SendOnlyEndpointError);
      expect(() => sendOnly.handle(Work, () => {})).toThrow(SendOnlyEndpointError);
    });
  });
}
