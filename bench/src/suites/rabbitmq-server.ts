// The server side of the RabbitMQ benchmark, in its own process: Tidings or raw amqplib doing the
// same work (ack after the reply is confirmed). Driven over IPC by suites/rabbitmq.ts.

import { randomUUID } from 'node:crypto';
import { createEndpoint, defineMessage, silentLogger } from '@tidings/core';
import { createRabbitMqTransport } from '@tidings/transport-rabbitmq';
import * as amqp from 'amqplib';

const Order = defineMessage<{ id: number; sku: string }>('bench.Order');
const Ack = defineMessage<{ id: number }>('bench.Ack');
/** Requests use their own type, so telling them from one-way sends needs no extra header. */
const Quote = defineMessage<{ id: number; sku: string }>('bench.Quote');

const [impl, queue, url] = process.argv.slice(2) as [string, string, string];
/** Handlers in flight (Tidings) = unacked messages (raw prefetch): the same window for both. */
const concurrency = 128;
let handled = 0;
let expected = Number.POSITIVE_INFINITY;
let cpuAtStart = process.cpuUsage();

function count(): void {
  handled++;
  if (handled === expected) {
    const cpu = process.cpuUsage(cpuAtStart);
    process.send?.({ kind: 'done', cpuMicros: cpu.user + cpu.system });
  }
}

process.on('message', (message: { kind: string; n?: number }) => {
  if (message.kind === 'expect') {
    handled = 0;
    expected = message.n ?? 0;
    cpuAtStart = process.cpuUsage();
    process.send?.({ kind: 'expecting' });
  } else if (message.kind === 'stop') {
    void stop().then(() => process.disconnect());
  }
});

let stop: () => Promise<void>;

/** Reply headers shaped like Tidings' (for the "raw amqplib + bus headers" row). */
function replyHeaders(correlationId: string): Record<string, string> {
  return {
    'tidings.message-id': randomUUID(),
    'tidings.correlation-id': correlationId,
    'tidings.conversation-id': correlationId,
    'tidings.message-type': 'bench.Ack',
    'tidings.content-type': 'application/json',
    'tidings.time-sent': new Date().toISOString(),
    'tidings.intent': 'reply',
    'tidings.originating-endpoint': queue,
    'tidings.originating-instance': 'e5f6a7b8',
  };
}

/** Leaves the broker as it was: the queues, and the exchanges the endpoint made per handled type. */
async function deleteQueues(queues: string[], exchanges: string[] = []): Promise<void> {
  const connection = await amqp.connect(url, { noDelay: true });
  const channel = await connection.createChannel();
  for (const name of queues) if (name !== '') await channel.deleteQueue(name);
  for (const name of exchanges) await channel.deleteExchange(name);
  await connection.close();
}

if (impl === 'tidings') {
  const server = createEndpoint({
    name: queue,
    transport: createRabbitMqTransport({ url }),
    logger: silentLogger,
    concurrency,
    recoverability: { errorQueue: `${queue}-error` },
  });
  server.handle(Order, () => {
    count();
  });
  server.handle(Quote, async (quote, ctx) => {
    await ctx.reply(Ack, { id: quote.id });
    count();
  });
  await server.start();
  stop = async () => {
    await server.stop();
    await deleteQueues(
      [queue, `${queue}-error`, server.instanceQueue ?? ''],
      [Order.name, Quote.name],
    );
  };
} else {
  const connection = await amqp.connect(url, { noDelay: true });
  const channel = await connection.createConfirmChannel();
  await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  // The same broker-side window as Tidings (prefetch = 2 × concurrency by default).
  await channel.prefetch(concurrency * 2, false);
  await channel.consume(queue, (message) => {
    if (message === null) return;
    const order = JSON.parse(message.content.toString('utf8')) as { id: number };
    const { replyTo, correlationId } = message.properties;
    if (replyTo) {
      const reply = Buffer.from(JSON.stringify({ id: order.id }));
      const headers = impl === 'raw-headers' ? replyHeaders(correlationId) : undefined;
      const properties = { correlationId, persistent: true, ...(headers ? { headers } : {}) };
      channel.sendToQueue(replyTo, reply, properties, (error) => {
        if (error) channel.nack(message);
        else channel.ack(message);
        count();
      });
    } else {
      channel.ack(message);
      count();
    }
  });
  stop = async () => {
    await channel.deleteQueue(queue);
    await connection.close();
  };
}
process.send?.({ kind: 'ready' });
