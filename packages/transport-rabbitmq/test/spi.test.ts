import { silentLogger, TidingsError } from '@tidings/core';
import type { IncomingTransportMessage, TransportEndpoint } from '@tidings/core/transport';
import { recordingLogger } from '@tidings/transport-tests';
import { afterEach, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import { brokerUrl, deleteTopology, queueDepth, rawConnection } from './broker.ts';
import { uniquePrefix } from './helpers.ts';

const wait = { timeout: 20_000, interval: 20 };

describe('rabbitmq transport SPI', () => {
  const opened: TransportEndpoint[] = [];
  const queues: string[] = [];
  afterEach(async () => {
    for (const endpoint of opened.splice(0)) await endpoint.close();
    await deleteTopology(queues.splice(0));
  });

  const open = async (queue: string, queueType: 'quorum' | 'classic' = 'quorum') => {
    queues.push(queue, `${queue}-error`);
    const endpoint = await createRabbitMqTransport({ url: brokerUrl, queueType }).openEndpoint(
      { endpointName: queue, inputQueue: queue, errorQueue: `${queue}-error`, subscriptions: [] },
      { logger: silentLogger },
    );
    opened.push(endpoint);
    return endpoint;
  };

  const message = (id: string) => ({
    messageId: id,
    headers: { 'tidings.message-id': id, 'tidings.message-type': 'spi.Test' },
    body: Buffer.from('{}'),
  });

  it('counts deliveries on quorum queues: an abandoned message comes back with deliveryCount 2', async () => {
    const queue = uniquePrefix('count');
    const endpoint = await open(queue);
    const seen: IncomingTransportMessage[] = [];
    await endpoint.startReceiving({
      concurrency: 1,
      onMessage: async (incoming) => {
        seen.push(incoming);
        return seen.length === 1 ? 'abandon' : 'complete';
      },
    });
    await endpoint.dispatch([
      { message: message(`${queue}-m`), destination: { kind: 'queue', queue } },
    ]);
    await expect.poll(() => seen.length, wait).toBe(2);
    expect(seen.map((m) => m.deliveryCount)).toEqual([1, 2]);
    expect(seen[1]?.messageId).toBe(`${queue}-m`);
    // Broker-added headers are not passed on as bus headers.
    expect(seen[1]?.headers['x-delivery-count']).toBeUndefined();
  });

  it('coalesced acks: out-of-order completions and requeues settle every message exactly once', async () => {
    const queue = uniquePrefix('acks');
    const endpoint = await open(queue);
    const completed = new Map<string, number>();
    const abandoned = new Set<string>();
    await endpoint.startReceiving({
      concurrency: 8,
      onMessage: async (incoming) => {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 10));
        const id = incoming.messageId;
        // Every seventh message is requeued once, in the middle of acked neighbours.
        if (Number(id.split('-').pop()) % 7 === 0 && !abandoned.has(id)) {
          abandoned.add(id);
          return 'abandon';
        }
        completed.set(id, (completed.get(id) ?? 0) + 1);
        return 'complete';
      },
    });
    const total = 200;
    await endpoint.dispatch(
      Array.from({ length: total }, (_, n) => ({
        message: message(`${queue}-${n}`),
        destination: { kind: 'queue' as const, queue },
      })),
    );
    await expect.poll(() => completed.size, wait).toBe(total);
    expect([...completed.values()].every((times) => times === 1)).toBe(true);
    expect(abandoned.size).toBe(Math.ceil(total / 7));
    await endpoint.stopReceiving();
    await endpoint.close();
    opened.splice(opened.indexOf(endpoint), 1);
    // Nothing left unacknowledged: after the connection closed, no message went back to the queue.
    expect(await queueDepth(queue)).toBe(0);
  });

  it('stopReceiving hands prefetched messages no handler has seen back at once, behind a handler that hangs', async () => {
    const queue = uniquePrefix('handback');
    const endpoint = await open(queue);
    let started = 0;
    let release: () => void = () => {};
    const hung = new Promise<void>((resolve) => {
      release = resolve;
    });
    // One slot, a prefetch of two: one message in the handler, one waiting for the slot.
    await endpoint.startReceiving({
      concurrency: 1,
      onMessage: async () => {
        started++;
        await hung;
        return 'complete';
      },
    });
    const total = 5;
    await endpoint.dispatch(
      Array.from({ length: total }, (_, n) => ({
        message: message(`${queue}-${n}`),
        destination: { kind: 'queue' as const, queue },
      })),
    );
    await expect.poll(() => queueDepth(queue), wait).toBe(total - 2);
    expect(started).toBe(1);
    await endpoint.stopReceiving();
    // The waiting one is back in the queue while the handler still runs.
    await expect.poll(() => queueDepth(queue), wait).toBe(total - 1);
    expect(started).toBe(1);
    release();
  });

  it('honours write backpressure: a burst larger than the write buffer waits for drain and loses nothing', async () => {
    const queue = uniquePrefix('burst');
    queues.push(queue, `${queue}-error`);
    const logger = recordingLogger();
    const endpoint = await createRabbitMqTransport({ url: brokerUrl }).openEndpoint(
      { endpointName: queue, inputQueue: queue, errorQueue: `${queue}-error`, subscriptions: [] },
      { logger },
    );
    opened.push(endpoint);
    const received = new Set<string>();
    await endpoint.startReceiving({
      concurrency: 32,
      onMessage: async (incoming) => {
        received.add(incoming.messageId);
        return 'complete';
      },
    });
    const total = 3_000;
    // One dispatch: every publish is written in the same tick, past amqplib's buffer mark.
    await endpoint.dispatch(
      Array.from({ length: total }, (_, n) => ({
        message: message(`${queue}-${n}`),
        destination: { kind: 'queue' as const, queue },
      })),
    );
    expect(logger.lines.some((line) => line.includes('sends wait for it to drain'))).toBe(true);
    await expect.poll(() => received.size, wait).toBe(total);
  });

  it('classic queues report no delivery count', async () => {
    const queue = uniquePrefix('classic');
    const endpoint = await open(queue, 'classic');
    const seen: IncomingTransportMessage[] = [];
    await endpoint.startReceiving({
      concurrency: 1,
      onMessage: async (incoming) => {
        seen.push(incoming);
        return 'complete';
      },
    });
    await endpoint.dispatch([
      { message: message(`${queue}-m`), destination: { kind: 'queue', queue } },
    ]);
    await expect.poll(() => seen.length, wait).toBe(1);
    expect(seen[0]?.deliveryCount).toBeUndefined();
  });

  it('fills missing bus headers from native AMQP properties', async () => {
    const queue = uniquePrefix('native');
    const endpoint = await open(queue);
    const seen: IncomingTransportMessage[] = [];
    await endpoint.startReceiving({
      concurrency: 1,
      onMessage: async (incoming) => {
        seen.push(incoming);
        return 'complete';
      },
    });
    const connection = await rawConnection();
    try {
      const channel = await connection.createConfirmChannel();
      channel.sendToQueue(queue, Buffer.from('{}'), {
        messageId: 'native-1',
        correlationId: 'corr-1',
        replyTo: 'somewhere',
        contentType: 'application/json',
        type: 'spi.Native',
        headers: { 'x-tenant': 'acme', count: 3 },
      });
      await channel.waitForConfirms();
    } finally {
      await connection.close();
    }
    await expect.poll(() => seen.length, wait).toBe(1);
    expect(seen[0]?.messageId).toBe('native-1');
    expect(seen[0]?.headers).toEqual({
      'tidings.message-id': 'native-1',
      'tidings.correlation-id': 'corr-1',
      'tidings.reply-to': 'somewhere',
      'tidings.content-type': 'application/json',
      'tidings.message-type': 'spi.Native',
      'x-tenant': 'acme',
      count: '3',
    });
  });

  it('an amqps:// URL speaks TLS: against a plain AMQP port it fails cleanly, without the password', async () => {
    const url = new URL(brokerUrl);
    url.protocol = 'amqps:';
    url.password = 'tls-secret-pw';
    const transport = createRabbitMqTransport({
      url: url.toString(),
      tls: { rejectUnauthorized: true },
    });
    const error = await transport
      .openEndpoint(
        { endpointName: 'never', errorQueue: 'never-error', subscriptions: [] },
        { logger: silentLogger },
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(TidingsError);
    expect(String((error as Error).message)).not.toContain('tls-secret-pw');
  });
});
