import { randomBytes } from 'node:crypto';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createEndpoint, defineMessage, silentLogger } from '@tidings/core';
import { createRabbitMqTransport } from '@tidings/transport-rabbitmq';
import * as amqp from 'amqplib';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createOpenTelemetry } from '../src/index.ts';
import { describeTracing, tracingMessageTypes } from './describe-tracing.ts';
import { parentOf, registerTestSdk } from './sdk.ts';

const sdk = registerTestSdk();
const brokerUrl = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** Deletes what a test made; a missing queue or exchange is fine. */
async function deleteTopology(queues: readonly string[], exchanges: readonly string[] = []) {
  const connection = await amqp.connect(brokerUrl, { noDelay: true });
  connection.on('error', () => {});
  try {
    for (const name of queues) {
      const channel = await connection.createChannel();
      channel.on('error', () => {});
      await channel.deleteQueue(name).catch(() => {});
      await channel.close().catch(() => {});
    }
    for (const name of exchanges) {
      const channel = await connection.createChannel();
      channel.on('error', () => {});
      await channel.deleteExchange(name).catch(() => {});
      await channel.close().catch(() => {});
    }
  } finally {
    await connection.close().catch(() => {});
  }
}

describeTracing(sdk, {
  name: 'rabbitmq',
  system: 'rabbitmq',
  makeTransport: () => createRabbitMqTransport({ url: brokerUrl }),
  cleanup: (scope) => deleteTopology(scope.queues),
});

afterAll(() => deleteTopology([], tracingMessageTypes));

const Foreign = defineMessage<{ n: number }>('otel.Foreign');

describe('OpenTelemetry on rabbitmq, from a plain AMQP client', () => {
  it('a message published with amqplib and only a traceparent header joins its trace', async () => {
    const queue = `otel-foreign-${randomBytes(3).toString('hex')}`;
    const handled: number[] = [];
    const server = createEndpoint({
      name: queue,
      transport: createRabbitMqTransport({ url: brokerUrl }),
      logger: silentLogger,
      instrumentation: createOpenTelemetry(),
      recoverability: { errorQueue: `${queue}-error` },
    });
    server.handle(Foreign, (message) => {
      handled.push(message.n);
    });
    await server.start();
    const connection = await amqp.connect(brokerUrl, { noDelay: true });
    try {
      const channel = await connection.createChannel();
      const traceId = '5bf92f3577b34da6a3ce929d0e0e4736';
      const spanId = '10f067aa0ba902b7';
      // What a service in another language does: the message type as the AMQP `type`
      // property (docs/wire-format.md), the trace context as a plain header.
      channel.sendToQueue(queue, Buffer.from('{"n":5}'), {
        type: Foreign.name,
        messageId: 'amqp-1',
        headers: { traceparent: `00-${traceId}-${spanId}-01` },
      });
      await vi.waitFor(() => expect(handled).toEqual([5]), { timeout: 20_000 });
      await vi.waitFor(
        () => expect(sdk.spans().some((s) => s.name === `process ${queue}`)).toBe(true),
        { timeout: 20_000 },
      );
      const process = sdk.spans().find((s) => s.name === `process ${queue}`) as ReadableSpan;
      expect(process.spanContext().traceId).toBe(traceId);
      expect(parentOf(process)).toBe(spanId);
      expect(process.attributes['messaging.system']).toBe('rabbitmq');
      expect(process.attributes['messaging.message.id']).toBe('amqp-1');
    } finally {
      await connection.close().catch(() => {});
      await server.stop();
      await deleteTopology([queue, `${queue}-error`, server.instanceQueue ?? ''], [Foreign.name]);
    }
  });
});
