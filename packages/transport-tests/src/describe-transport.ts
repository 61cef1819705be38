import {
  createInMemoryPersistence,
  defineMessage,
  type Endpoint,
  Headers,
  MessageTooLargeError,
  NoRouteError,
  RemoteFailureError,
  ReplyMismatchError,
  RequestAbortedError,
  RequestTimeoutError,
  returnToSourceQueue,
  SendOnlyEndpointError,
  type Transport,
  type TransportCapabilities,
  UsageError,
} from '@tidings/core';
import { PACKED_HEADERS } from '@tidings/core/transport';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createScope, type ScopeHelpers, type TestScope } from './scope.js';

export interface DescribeTransportOptions {
  /** Shown in the test names. */
  readonly name: string;
  /**
   * Makes a transport. Called once per simulated process (each endpoint gets its own), so the
   * suite exercises separate connections. Transports made for the same scope must reach the same
   * queues (for an in-memory transport, return one shared instance per scope).
   */
  makeTransport(scope: TestScope): Transport | Promise<Transport>;
  /**
   * What the transport declares; groups that need a capability it lacks are skipped, never by
   * name. The suite checks the declaration against `transport.capabilities`.
   */
  readonly capabilities: TransportCapabilities;
  /** Deletes what a test left behind (its queues all start with `scope.id`). */
  cleanup?(scope: TestScope): Promise<void>;
  /**
   * Multiplies waits, for brokers that take longer to deliver.
   * @default 1
   */
  readonly timeScale?: number;
  /**
   * For a transport that packs bus headers into one `tidings.headers` entry (ADR 8): sends and
   * reads natively, past the transport, so the suite can check what a broker's own tools show.
   * Left out where headers travel one by one; the tests that need it are skipped.
   */
  readonly packed?: PackedHeadersAccess;
}

/** Native access to a queue for `DescribeTransportOptions.packed`. */
export interface PackedHeadersAccess {
  /** Sends `body` to `queue` with `entries` as its native headers, `tidings.headers` as given. */
  send(
    scope: TestScope,
    queue: string,
    entries: Readonly<Record<string, string>>,
    body: Uint8Array,
  ): Promise<void>;
  /**
   * The native headers, as text, of the latest message in `queue` whose `tidings.message-id`
   * entry is `messageId`, left there; undefined if there is none.
   */
  peek(
    scope: TestScope,
    queue: string,
    messageId: string,
  ): Promise<Record<string, string> | undefined>;
}

const Ping = defineMessage<{ n: number; from?: string }>('conformance.Ping');
const Pong = defineMessage<{ n: number; by?: string; to?: string }>('conformance.Pong');
const Other = defineMessage<{ n: number }>('conformance.Other');
const Work = defineMessage<{ n: number }>('conformance.Work');
const Happened = defineMessage<{ n: number }>('conformance.Happened');
const Big = defineMessage<{ data: string }>('conformance.Big');
enum Status {
  Ok = 0,
  Rejected = 1,
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Registers the conformance suite for one transport. Call it at the top level of a test file. */
export function describeTransport(options: DescribeTransportOptions): void {
  const caps = options.capabilities;
  const scale = options.timeScale ?? 1;
  const wait = { timeout: 20_000 * scale, interval: 20 };

  describe(`transport conformance: ${options.name}`, () => {
    let t: ScopeHelpers;
    beforeEach(() => {
      t = createScope((scope) => options.makeTransport(scope));
    });
    afterEach(async () => {
      await t.dispose();
      await options.cleanup?.(t.scope);
    });

    const server = (setup: (endpoint: Endpoint) => void, extra = {}) =>
      t.started('Server', extra, setup);
    const client = (extra = {}, setup?: (endpoint: Endpoint) => void) =>
      t.started(
        'Client',
        {
          routes: {
            [Ping.name]: t.name('Server'),
            [Work.name]: t.name('Server'),
            [Big.name]: t.name('Server'),
          },
          ...extra,
        },
        setup,
      );

    it('declares the capabilities it has', async () => {
      const transport = await options.makeTransport(t.scope);
      t.scope.transports.push(transport);
      expect(transport.capabilities).toEqual(caps);
    });

    describe('send and receive', () => {
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

    describe('publish and subscribe', () => {
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

    describe('request and reply', () => {
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
        expect(() => sendOnly.send(Work, { n: 2 }).register(() => {})).toThrow(
          SendOnlyEndpointError,
        );
        expect(() => sendOnly.handle(Work, () => {})).toThrow(SendOnlyEndpointError);
      });
    });

    describe('outbox and inbox (in-memory persistence)', () => {
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

    describe('recoverability', () => {
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

    describe.skipIf(options.packed === undefined)(
      'the error queue keeps the message as it came',
      () => {
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

    describe('returning an event that failed in two endpoints', () => {
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
        await expect
          .poll(() => a.stats.movedToErrorQueue + b.stats.movedToErrorQueue, wait)
          .toBe(2);

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

    describe('lifecycle', () => {
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
  });
}
