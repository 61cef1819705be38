import {
  createEndpoint,
  DestinationNotFoundError,
  defineMessage,
  type Endpoint,
  Headers,
  silentLogger,
} from '@tidings/core';
import { recordingLogger } from '@tidings/transport-tests';
import type * as amqp from 'amqplib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import { headersFromAmqp } from '../src/rabbitmq-headers.ts';
import { brokerUrl, deleteTopology, rawConnection } from './broker.ts';
import { disposeEndpoints, sleep, uniquePrefix } from './helpers.ts';

const Quote = defineMessage<{ n: number }>('rmqdur.Quote');
const Priced = defineMessage<{ n: number }>('rmqdur.Priced');

/** Takes one message from a queue, waiting for it to arrive. */
async function takeOne(channel: amqp.Channel, queue: string): Promise<amqp.GetMessage> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const message = await channel.get(queue, { noAck: true });
    if (message !== false) return message;
    await sleep(20);
  }
  throw new Error(`nothing arrived in ${queue}`);
}

// Durability by purpose (ADR 13), as the broker sees it: AMQP delivery mode 1 is transient, 2 persistent.
describe('rabbitmq durability by purpose', { timeout: 60_000 }, () => {
  const endpoints: Endpoint[] = [];
  const queues: string[] = [];
  let connection: amqp.ChannelModel | undefined;

  afterEach(async () => {
    await connection?.close().catch(() => {});
    connection = undefined;
    await disposeEndpoints(endpoints.splice(0), queues.splice(0));
  });
  afterAll(() => deleteTopology([], [Quote.name]));

  async function server(prefix: string): Promise<Endpoint> {
    const endpoint = createEndpoint({
      name: `${prefix}-Server`,
      transport: createRabbitMqTransport({ url: brokerUrl, queueType: 'classic' }),
      logger: silentLogger,
      recoverability: { errorQueue: `${prefix}-error` },
    });
    endpoint.handle(Quote, async (quote, ctx) => {
      await ctx.reply(Priced, { n: quote.n });
    });
    endpoints.push(endpoint);
    queues.push(`${prefix}-error`);
    await endpoint.start();
    return endpoint;
  }

  /** Sends a Quote as a foreign client would, with replies to a queue of the test's own. */
  async function askRaw(prefix: string, headers: Record<string, string>) {
    connection = await rawConnection();
    const channel = await connection.createChannel();
    const replies = `${prefix}-replies`;
    queues.push(replies);
    await channel.assertQueue(replies, { durable: false });
    channel.sendToQueue(`${prefix}-Server`, Buffer.from('{"n":1}'), {
      messageId: `${prefix}-m1`,
      correlationId: `${prefix}-m1`,
      replyTo: replies,
      type: Quote.name,
      contentType: 'application/json',
      headers: { [Headers.Intent]: 'send', ...headers },
    });
    return takeOne(channel, replies);
  }

  it('a reply to a request marked express travels transient', async () => {
    const prefix = uniquePrefix('dur-express');
    await server(prefix);
    const reply = await askRaw(prefix, { [Headers.ReplyDurability]: 'express' });
    expect(reply.properties.correlationId).toBe(`${prefix}-m1`);
    expect(reply.properties.deliveryMode).toBe(1);
  });

  it('a reply to a plain send (full duplex) travels persistent', async () => {
    const prefix = uniquePrefix('dur-durable');
    await server(prefix);
    const reply = await askRaw(prefix, {});
    expect(reply.properties.correlationId).toBe(`${prefix}-m1`);
    expect(reply.properties.deliveryMode).toBe(2);
  });

  async function requester(prefix: string, target: string, persistentCallbackRequests?: boolean) {
    const client = createEndpoint({
      name: `${prefix}-Client`,
      transport: createRabbitMqTransport({
        url: brokerUrl,
        queueType: 'classic',
        ...(persistentCallbackRequests !== undefined ? { persistentCallbackRequests } : {}),
      }),
      logger: silentLogger,
      routes: { [Quote.name]: target },
      requestTimeoutMs: 60_000,
      recoverability: { errorQueue: `${prefix}-error` },
    });
    endpoints.push(client);
    queues.push(`${prefix}-error`);
    await client.start();
    return client;
  }

  it('request() marks its message and sends it transient; a plain send stays persistent', async () => {
    const prefix = uniquePrefix('dur-request');
    const target = `${prefix}-Target`;
    queues.push(target);
    connection = await rawConnection();
    const channel = await connection.createChannel();
    await channel.assertQueue(target, { durable: true });
    const client = await requester(prefix, target);
    // Nobody answers: the requests wait in the target queue to be looked at.
    void client.request(Quote, { n: 1 }).catch(() => {});
    const request = await takeOne(channel, target);
    expect(headersFromAmqp(request.properties).headers[Headers.ReplyDurability]).toBe('express');
    expect(request.properties.deliveryMode).toBe(1);
    void client.request(Quote, { n: 2 }, { express: true }).catch(() => {});
    const express = await takeOne(channel, target);
    expect(express.properties.deliveryMode).toBe(1);
    await client.send(Quote, { n: 3 });
    const plain = await takeOne(channel, target);
    expect(headersFromAmqp(plain.properties).headers[Headers.ReplyDurability]).toBeUndefined();
    expect(plain.properties.deliveryMode).toBe(2);
  });

  it('a transient request is still confirmed: one no queue takes fails the request at once', async () => {
    const prefix = uniquePrefix('dur-request-missing');
    const client = await requester(prefix, `${prefix}-Nowhere`);
    const started = performance.now();
    await expect(client.request(Quote, { n: 1 })).rejects.toBeInstanceOf(DestinationNotFoundError);
    // The return came with the confirm, long before the 60 s timeout.
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(client.stats.pendingRequests).toBe(0);
  });

  it('with persistentCallbackRequests, request() sends its message persistent', async () => {
    const prefix = uniquePrefix('dur-request-persistent');
    const target = `${prefix}-Target`;
    queues.push(target);
    connection = await rawConnection();
    const channel = await connection.createChannel();
    await channel.assertQueue(target, { durable: true });
    const client = await requester(prefix, target, true);
    void client.request(Quote, { n: 1 }).catch(() => {});
    const request = await takeOne(channel, target);
    expect(headersFromAmqp(request.properties).headers[Headers.ReplyDurability]).toBe('express');
    expect(request.properties.deliveryMode).toBe(2);
  });

  it("a failed request's error-queue copy is persistent", async () => {
    const prefix = uniquePrefix('dur-request-error');
    const errorQueue = `${prefix}-error`;
    const failing = createEndpoint({
      name: `${prefix}-Server`,
      transport: createRabbitMqTransport({ url: brokerUrl, queueType: 'classic' }),
      logger: silentLogger,
      recoverability: { errorQueue, immediateRetries: 0, delayedRetries: { count: 0 } },
    });
    failing.handle(Quote, () => {
      throw new Error('refused');
    });
    endpoints.push(failing);
    queues.push(errorQueue);
    await failing.start();
    const client = await requester(prefix, `${prefix}-Server`);
    // The failure comes back as a fault reply; the copy waits in the error queue.
    await client.request(Quote, { n: 1 }).catch(() => {});
    connection = await rawConnection();
    const copy = await takeOne(await connection.createChannel(), errorQueue);
    expect(headersFromAmqp(copy.properties).headers[Headers.ReplyDurability]).toBe('express');
    expect(copy.properties.deliveryMode).toBe(2);
  });

  it('an express send is not confirmed: a missing queue does not fail it, and is logged', async () => {
    const prefix = uniquePrefix('dur-missing');
    const logger = recordingLogger();
    const client = createEndpoint({
      name: `${prefix}-Client`,
      transport: createRabbitMqTransport({ url: brokerUrl, queueType: 'classic' }),
      logger,
      routes: { [Quote.name]: `${prefix}-Nowhere` },
      recoverability: { errorQueue: `${prefix}-error` },
    });
    endpoints.push(client);
    queues.push(`${prefix}-error`);
    await client.start();
    await expect(client.send(Quote, { n: 1 })).rejects.toBeInstanceOf(DestinationNotFoundError);
    await expect(client.send(Quote, { n: 2 }, { express: true })).resolves.toBeUndefined();
    await expect
      .poll(() => logger.lines.find((line) => line.startsWith('warn RabbitMQ: dropped an express')))
      .toContain(`'${prefix}-Nowhere'`);
  });
});
