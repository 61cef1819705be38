import { context, propagation, type Span, SpanKind, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { defineMessage, Headers, type Transport } from '@tidings/core';
import {
  createScope,
  recordingLogger,
  type ScopeHelpers,
  type TestScope,
} from '@tidings/transport-tests';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createOpenTelemetry } from '../src/index.ts';
import { parentOf, type TestSdk } from './sdk.ts';

export interface DescribeTracingOptions {
  readonly name: string;
  /** Expected `messaging.system`. */
  readonly system: string;
  makeTransport(scope: TestScope): Transport | Promise<Transport>;
  /** Message types the suite handles, for transports that make something per type. */
  cleanup?(scope: TestScope, messageTypes: readonly string[]): Promise<void>;
}

const Ping = defineMessage<{ n: number }>('otel.Ping');
const Pong = defineMessage<{ n: number }>('otel.Pong');
const Work = defineMessage<{ n: number }>('otel.Work');
export const tracingMessageTypes = [Ping.name, Pong.name, Work.name];

const wait = { timeout: 20_000, interval: 20 };
const appTracer = () => trace.getTracer('app');

/** Traces and metrics of Tidings endpoints on one transport, with the SDK registered. */
export function describeTracing(sdk: TestSdk, options: DescribeTracingOptions): void {
  describe(`OpenTelemetry on ${options.name}`, () => {
    let t: ScopeHelpers;
    beforeEach(() => {
      sdk.exporter.reset();
      t = createScope((scope) => options.makeTransport(scope));
    });
    afterEach(async () => {
      await t.dispose();
      await options.cleanup?.(t.scope, tracingMessageTypes);
    });

    const instrumentation = createOpenTelemetry();
    const named = (name: string) => (span: ReadableSpan) => span.name === name;
    const byStart = (a: ReadableSpan, b: ReadableSpan) =>
      a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1];

    it('a request and its reply make one trace: request, send, process, the handler’s span, reply', async () => {
      const server = await t.started('Server', { instrumentation }, (endpoint) =>
        endpoint.handle(Ping, async (ping, ctx) => {
          await appTracer().startActiveSpan('db.query', async (span) => {
            await new Promise((resolve) => setTimeout(resolve, 1));
            span.end();
          });
          await ctx.reply(Pong, { n: ping.n + 1 });
        }),
      );
      const client = await t.started('Client', {
        instrumentation,
        instanceId: 'c1',
        routes: { [Ping.name]: server.name },
      });
      let http: Span | undefined;
      const reply = await appTracer().startActiveSpan('http.request', async (span) => {
        http = span;
        try {
          return await client.request(Ping, { n: 1 }, { expect: Pong });
        } finally {
          span.end();
        }
      });
      expect(reply).toEqual({ n: 2 });
      const replyQueue = `${client.name}.c1`;
      // Each span is exported when it ends: the handler's, once its message is settled.
      const expected = [
        `request ${server.name}`,
        `send ${server.name}`,
        `process ${server.name}`,
        'db.query',
        `send ${replyQueue}`,
        `process ${replyQueue}`,
      ];
      await vi.waitFor(
        () => expect(expected.filter((name) => !sdk.spans().some(named(name)))).toEqual([]),
        wait,
      );

      const spans = sdk.spans();
      const traceId = http?.spanContext().traceId;
      const inTrace = spans.filter((s) => s.spanContext().traceId === traceId);
      const one = (name: string) => {
        const found = inTrace.filter(named(name));
        expect(found, name).toHaveLength(1);
        return found[0] as ReadableSpan;
      };
      const request = one(`request ${server.name}`);
      const send = one(`send ${server.name}`);
      const process = one(`process ${server.name}`);
      const db = one('db.query');
      const replySend = one(`send ${replyQueue}`);
      const replyProcess = one(`process ${replyQueue}`);

      expect(request.kind).toBe(SpanKind.CLIENT);
      expect(parentOf(request)).toBe(http?.spanContext().spanId);
      expect(send.kind).toBe(SpanKind.PRODUCER);
      expect(parentOf(send)).toBe(request.spanContext().spanId);
      expect(process.kind).toBe(SpanKind.CONSUMER);
      expect(parentOf(process)).toBe(send.spanContext().spanId);
      expect(parentOf(db)).toBe(process.spanContext().spanId);
      expect(replySend.kind).toBe(SpanKind.PRODUCER);
      expect(parentOf(replySend)).toBe(process.spanContext().spanId);
      expect(replyProcess.kind).toBe(SpanKind.CONSUMER);
      expect(parentOf(replyProcess)).toBe(replySend.spanContext().spanId);

      const messageId = send.attributes['messaging.message.id'];
      expect(send.attributes).toMatchObject({
        'messaging.system': options.system,
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
        'messaging.destination.name': server.name,
        'messaging.message.conversation_id': messageId,
        'tidings.message.type': Ping.name,
      });
      expect(request.attributes).toEqual({
        'messaging.system': options.system,
        'messaging.operation.name': 'request',
        'messaging.destination.name': server.name,
        'messaging.message.id': messageId,
        'tidings.message.type': Ping.name,
      });
      expect(process.attributes).toMatchObject({
        'messaging.system': options.system,
        'messaging.operation.type': 'process',
        'messaging.destination.name': server.name,
        'messaging.message.id': messageId,
        'messaging.message.conversation_id': messageId,
        'tidings.attempt': 1,
        'tidings.outcome': 'complete',
      });
      expect(replySend.attributes).toMatchObject({
        'tidings.intent': 'reply',
        'messaging.message.conversation_id': messageId,
      });
      expect(replyProcess.attributes).toMatchObject({
        'messaging.destination.name': replyQueue,
        'messaging.message.conversation_id': messageId,
      });

      // Metrics of the same exchange.
      const toServer = { 'messaging.destination.name': server.name };
      expect(await sdk.metricValue('messaging.client.sent.messages', toServer)).toBe(1);
      expect(await sdk.metricValue('messaging.client.consumed.messages', toServer)).toBe(1);
      expect(await sdk.metricValue('tidings.messages.handled', toServer)).toBe(1);
      expect(await sdk.metricValue('messaging.process.duration', toServer)).toBe(1);
      expect(await sdk.metricValue('tidings.message.critical_time', toServer)).toBe(1);
      expect(await sdk.metricValue('tidings.message.queue_time', toServer)).toBe(1);
      expect(await sdk.metricValue('tidings.request.duration', toServer)).toBe(1);
      expect(await sdk.metricValue('tidings.requests.pending', toServer)).toBe(0);
      expect(
        await sdk.metricValue('messaging.client.sent.messages', {
          'messaging.destination.name': replyQueue,
        }),
      ).toBe(1);
    });

    it('a message retried at once, then later, then moved to the error queue shows every attempt and its exception', async () => {
      const logger = recordingLogger();
      const server = await t.started(
        'Server',
        {
          instrumentation,
          logger,
          recoverability: { immediateRetries: 1, delayedRetries: { count: 1, delayMs: 50 } },
        },
        (endpoint) =>
          endpoint.handle(Work, () => {
            throw new Error('boom');
          }),
      );
      const client = await t.started('Client', {
        instrumentation,
        routes: { [Work.name]: server.name },
      });
      await client.send(Work, { n: 1 });
      await vi.waitFor(
        () => expect(sdk.spans().some(named(`send ${t.errorQueue}`))).toBe(true),
        wait,
      );
      await vi.waitFor(() => expect(server.stats.movedToErrorQueue).toBe(1), wait);
      // The last attempt's span ends once the message is settled, after the move.
      await vi.waitFor(
        () => expect(sdk.spans().filter(named(`process ${server.name}`))).toHaveLength(4),
        wait,
      );

      const spans = sdk.spans();
      const send = spans.filter(named(`send ${server.name}`)).sort(byStart);
      // The client's send, then the delayed retry.
      expect(send).toHaveLength(2);
      const [first, delayed] = send as [ReadableSpan, ReadableSpan];
      const traceId = first.spanContext().traceId;
      const attempts = spans.filter(named(`process ${server.name}`)).sort(byStart);
      expect(attempts.map((s) => s.attributes['tidings.attempt'])).toEqual([1, 2, 1, 2]);
      expect(attempts.map((s) => s.attributes['tidings.failure.next'])).toEqual([
        'immediate-retry',
        'delayed-retry',
        'immediate-retry',
        'error-queue',
      ]);
      expect(attempts.map((s) => s.attributes['tidings.delayed_retries'])).toEqual([
        undefined,
        undefined,
        1,
        1,
      ]);
      for (const attempt of attempts) {
        expect(attempt.spanContext().traceId).toBe(traceId);
        expect(attempt.status.code).toBe(2);
        expect(attempt.attributes['error.type']).toBe('Error');
        const exception = attempt.events.find((e) => e.name === 'exception');
        expect(exception?.attributes?.['exception.message']).toBe('boom');
      }
      const [a1, a2, a3, a4] = attempts as [ReadableSpan, ReadableSpan, ReadableSpan, ReadableSpan];
      expect(parentOf(a1)).toBe(first.spanContext().spanId);
      expect(parentOf(a2)).toBe(first.spanContext().spanId);
      // The delayed retry is sent from the attempt that asked for it, and its attempts follow it.
      expect(delayed.attributes['tidings.delay_ms']).toBe(50);
      expect(parentOf(delayed)).toBe(a2.spanContext().spanId);
      expect(parentOf(a3)).toBe(delayed.spanContext().spanId);
      expect(parentOf(a4)).toBe(delayed.spanContext().spanId);
      const toError = spans.filter(named(`send ${t.errorQueue}`));
      expect(toError).toHaveLength(1);
      expect(parentOf(toError[0] as ReadableSpan)).toBe(a4.spanContext().spanId);

      // Tidings' own log records carry the trace they were written in.
      const moved = logger.lines.find((line) =>
        line.includes('Moved a message to the error queue'),
      );
      expect(moved).toContain(`"traceId":"${traceId}"`);
      expect(moved).toContain(`"spanId":"${a4.spanContext().spanId}"`);

      const atServer = { 'messaging.destination.name': server.name };
      expect(await sdk.metricValue('tidings.messages.failed', atServer)).toBe(4);
      expect(await sdk.metricValue('tidings.retries.immediate', atServer)).toBe(2);
      expect(await sdk.metricValue('tidings.retries.delayed', atServer)).toBe(1);
      expect(await sdk.metricValue('tidings.messages.moved_to_error_queue', atServer)).toBe(1);
      expect(await sdk.metricValue('tidings.messages.handled', atServer)).toBe(0);
      expect(await sdk.metricValue('messaging.client.consumed.messages', atServer)).toBe(2);
    });

    it('baggage set by the sender is active in the handler', async () => {
      const tenants: Array<string | undefined> = [];
      const server = await t.started('Server', { instrumentation }, (endpoint) =>
        endpoint.handle(Work, () => {
          tenants.push(propagation.getActiveBaggage()?.getEntry('tenant')?.value);
        }),
      );
      const client = await t.started('Client', {
        instrumentation,
        routes: { [Work.name]: server.name },
      });
      const baggage = propagation.createBaggage({ tenant: { value: 'acme' } });
      await context.with(propagation.setBaggage(context.active(), baggage), () =>
        client.send(Work, { n: 1 }),
      );
      await vi.waitFor(() => expect(tenants).toEqual(['acme']), wait);
    });

    it('a foreign message carrying only traceparent joins its trace', async () => {
      const handled: number[] = [];
      const server = await t.started('Server', { instrumentation }, (endpoint) =>
        endpoint.handle(Work, (work) => {
          handled.push(work.n);
        }),
      );
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const spanId = '00f067aa0ba902b7';
      const sender = await t.rawSender();
      await sender.dispatch([
        {
          message: {
            messageId: 'foreign-1',
            headers: {
              [Headers.MessageType]: Work.name,
              traceparent: `00-${traceId}-${spanId}-01`,
            },
            body: new TextEncoder().encode('{"n":7}'),
          },
          destination: { kind: 'queue', queue: server.name },
        },
      ]);
      await vi.waitFor(
        () => expect(sdk.spans().some(named(`process ${server.name}`))).toBe(true),
        wait,
      );
      expect(handled).toEqual([7]);
      const process = sdk.spans().find(named(`process ${server.name}`)) as ReadableSpan;
      expect(process.spanContext().traceId).toBe(traceId);
      expect(parentOf(process)).toBe(spanId);
      expect(process.parentSpanContext?.isRemote).toBe(true);
    });

    it('a malformed traceparent is handled as usual, in a new trace, with a debug log', async () => {
      const logger = recordingLogger();
      const handled: number[] = [];
      const server = await t.started('Server', { instrumentation, logger }, (endpoint) =>
        endpoint.handle(Work, (work) => {
          handled.push(work.n);
        }),
      );
      const sender = await t.rawSender();
      await sender.dispatch([
        {
          message: {
            messageId: 'foreign-2',
            headers: {
              [Headers.MessageType]: Work.name,
              traceparent: '00-not-a-trace-context-zz',
              tracestate: 'garbage==,',
            },
            body: new TextEncoder().encode('{"n":8}'),
          },
          destination: { kind: 'queue', queue: server.name },
        },
      ]);
      await vi.waitFor(() => expect(server.stats.handled).toBe(1), wait);
      await vi.waitFor(
        () => expect(sdk.spans().some(named(`process ${server.name}`))).toBe(true),
        wait,
      );
      expect(handled).toEqual([8]);
      expect(server.stats.movedToErrorQueue).toBe(0);
      const process = sdk.spans().find(named(`process ${server.name}`)) as ReadableSpan;
      expect(parentOf(process)).toBeUndefined();
      expect(process.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(process.status.code).not.toBe(2);
      expect(logger.lines.some((l) => l.startsWith('debug Ignored a malformed traceparent'))).toBe(
        true,
      );
    });

    it('counts what was sent and handled, per message type', async () => {
      let count = 0;
      const server = await t.started('Server', { instrumentation }, (endpoint) => {
        endpoint.handle(Work, () => {
          count++;
        });
        endpoint.handle(Ping, async (ping, ctx) => {
          await ctx.reply(Pong, { n: ping.n });
        });
      });
      const client = await t.started('Client', {
        instrumentation,
        routes: { [Work.name]: server.name, [Ping.name]: server.name },
      });
      for (let n = 0; n < 3; n++) await client.send(Work, { n });
      await client.request(Ping, { n: 9 }, { expect: Pong });
      await vi.waitFor(() => expect(count).toBe(3), wait);
      await vi.waitFor(() => expect(server.stats.handled).toBe(4), wait);
      const work = { 'messaging.destination.name': server.name, 'tidings.message.type': Work.name };
      const ping = { 'messaging.destination.name': server.name, 'tidings.message.type': Ping.name };
      await vi.waitFor(
        async () => expect(await sdk.metricValue('tidings.messages.handled', work)).toBe(3),
        wait,
      );
      expect(await sdk.metricValue('messaging.client.sent.messages', work)).toBe(3);
      expect(await sdk.metricValue('messaging.client.consumed.messages', work)).toBe(3);
      expect(await sdk.metricValue('messaging.process.duration', work)).toBe(3);
      await vi.waitFor(
        async () => expect(await sdk.metricValue('tidings.messages.handled', ping)).toBe(1),
        wait,
      );
      expect(await sdk.metricValue('messaging.client.sent.messages', ping)).toBe(1);
      expect(await sdk.metricValue('tidings.messages.failed', work)).toBe(0);
      expect(
        await sdk.metricValue('tidings.requests.pending', {
          'messaging.destination.name': server.name,
        }),
      ).toBe(0);
    });
  });
}
