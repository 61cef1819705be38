import { context, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import {
  createEndpoint,
  createInMemoryPersistence,
  createInMemoryTransport,
  defineMessage,
  MessageTooLargeError,
  silentLogger,
  type Transport,
} from '@tidings/core';
import { recordingLogger } from '@tidings/transport-tests';
import { describe, expect, it, vi } from 'vitest';
import { createOpenTelemetry } from '../src/index.ts';
import { describeTracing } from './describe-tracing.ts';
import { parentOf, registerTestSdk } from './sdk.ts';

const sdk = registerTestSdk();
// One transport per test: every endpoint of a test must reach the same queues.
const transports = new Map<string, Transport>();

describeTracing(sdk, {
  name: 'in-memory',
  system: 'tidings.in-memory',
  makeTransport: (scope) => {
    let transport = transports.get(scope.id);
    if (transport === undefined) {
      transport = createInMemoryTransport();
      transports.set(scope.id, transport);
    }
    return transport;
  },
  cleanup: async (scope) => {
    transports.delete(scope.id);
  },
});

describe('trace context and the transport size limit', () => {
  const Padded = defineMessage<{ pad: string }>('otel.Padded');
  const limit = 2048;

  it('sends a message that fits only without its trace context without it, and logs why', async () => {
    const transport = createInMemoryTransport({ maxMessageSizeBytes: limit });
    const logger = recordingLogger();
    const instrumentation = createOpenTelemetry();
    const seen: (string | undefined)[] = [];
    const receiver = createEndpoint({ name: 'otel.SizeReceiver', transport, instrumentation });
    receiver.handle(Padded, (_message, ctx) => {
      seen.push(ctx.headers.traceparent);
    });
    const sender = createEndpoint({
      name: 'otel.SizeSender',
      transport,
      instrumentation,
      logger,
      routes: { [Padded.name]: 'otel.SizeReceiver' },
    });
    await receiver.start();
    await sender.start();
    try {
      // Core's own error gives the size it counts: find the padding that leaves 4 bytes spare,
      // fewer than any traceparent takes.
      const tooLong = 'x'.repeat(limit);
      const error = await sender.send(Padded, { pad: tooLong }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MessageTooLargeError);
      const over = (error as MessageTooLargeError).sizeBytes - limit;
      await sender.send(Padded, { pad: 'x'.repeat(limit - over - 4) });
      await sender.send(Padded, { pad: 'short' });
      await vi.waitFor(() => expect(seen).toHaveLength(2), { timeout: 5000 });
      expect(seen[0]).toBeUndefined();
      expect(seen[1]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
      expect(
        logger.lines.filter((line) => line.startsWith('debug Sent without trace context')),
      ).toHaveLength(1);
    } finally {
      await sender.stop();
      await receiver.stop();
    }
  });
});

describe('the outbox and trace context', () => {
  const Shipped = defineMessage<{ id: string }>('otel.Shipped');

  it("a record the outbox's dispatcher sends later continues the trace it was stored in", async () => {
    const transport = createInMemoryTransport();
    const instrumentation = createOpenTelemetry();
    const sender = createEndpoint({
      name: 'otel.OutboxSender',
      transport,
      instrumentation,
      persistence: createInMemoryPersistence(),
      outbox: { dispatchIntervalMs: 20, dispatchAfterMs: 0 },
      routes: { [Shipped.name]: 'otel.OutboxReceiver' },
      logger: silentLogger,
    });
    const receiver = createEndpoint({
      name: 'otel.OutboxReceiver',
      transport,
      instrumentation,
      logger: silentLogger,
    });
    const handledIn: string[] = [];
    receiver.handle(Shipped, () => {
      handledIn.push(trace.getActiveSpan()?.spanContext().traceId ?? 'none');
    });
    await sender.start();
    try {
      // The receiver's queue does not exist yet: the dispatch after commit fails, and the
      // record waits for the dispatcher, which runs with no span active.
      const checkout = trace.getTracer('app').startSpan('checkout');
      await context.with(trace.setSpan(context.active(), checkout), () =>
        sender.transaction((scope) => scope.send(Shipped, { id: 'a' })),
      );
      checkout.end();
      await receiver.start();
      await vi.waitFor(() => expect(handledIn).toHaveLength(1), { timeout: 5000 });
      const traceId = checkout.spanContext().traceId;
      expect(handledIn).toEqual([traceId]);
      const sends = sdk
        .spans()
        .filter(
          (span) =>
            span.name === 'send otel.OutboxReceiver' && span.spanContext().traceId === traceId,
        );
      // The failed dispatch's span, a child of the checkout span, and the dispatcher's in the
      // same trace (its parent is the checkout span, or the failed send when the store kept
      // the headers that dispatch wrote).
      expect(sends.length).toBeGreaterThanOrEqual(2);
      const ids = new Set([
        checkout.spanContext().spanId,
        ...sends.map((s) => s.spanContext().spanId),
      ]);
      expect(parentOf(sends[0] as ReadableSpan)).toBe(checkout.spanContext().spanId);
      for (const send of sends) expect(ids.has(parentOf(send) as string)).toBe(true);
    } finally {
      await sender.stop();
      await receiver.stop();
    }
  });
});
