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

  it('request() marks its message; the request stays persistent unless sent express', async () => {
    const prefix = uniquePrefix('dur-request');
    const target = `${prefix}-Target`;
    queues.push(target);
    connection = await rawConnection();
    const channel = await connection.createChannel();
    await channel.assertQueue(target, { durable: true });
    const client = createEndpoint({
      name: `${prefix}-Client`,
      transport: createRabbitMqTransport({ url: brokerUrl, queueType: 'classic' }),
      logger: silentLogger,
      routes: { [Quote.name]: target },
      requestTimeoutMs: 60_000,
      recoverability: { errorQueue: `${prefix}-error` },
    });
    endpoints.push(client);
    queues.push(`${prefix}-error`);
    await client.start();
    // Nobody answers: the requests wait in the target queue to be looked at.
    void client.request(Quote, { n: 1 }).catch(() => {});
    const durable = await takeOne(channel, target);
    expect(headersFromAmqp(durable.properties).headers[Headers.ReplyDurability]).toBe('express');
    expect(durable.properties.deliveryMode).toBe(2);
    void client.request(Quote, { n: 2 }, { express: true }).catch(() => {});
    const express = await takeOne(channel, target);
    expect(express.properties.deliveryMode).toBe(1);
    await client.send(Quote, { n: 3 });
    const plain = await takeOne(channel, target);
    expect(headersFromAmqp(plain.properties).headers[Headers.ReplyDurability]).toBeUndefined();
    expect(plain.properties.deliveryMode).toBe(2);
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
