import {
  createEndpoint,
  createInMemoryTransport,
  defineMessage,
  MessageTooLargeError,
  type Transport,
} from '@tidings/core';
import { recordingLogger } from '@tidings/transport-tests';
import { describe, expect, it, vi } from 'vitest';
import { createOpenTelemetry } from '../src/index.ts';
import { describeTracing } from './describe-tracing.ts';
import { registerTestSdk } from './sdk.ts';

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
