// The server side of one RabbitMQ contestant, in its own process (started by
// rabbitmq-contestant.ts, the client side): Tidings, or raw amqplib written one of two ways.
//   raw-rpc: RPC as users hand-write it: a plain channel, transient replies, the request acked
//            once the reply is written, no publisher confirms.
//   raw:     raw amqplib carrying Tidings' durable guarantees: persistent replies, the request
//            acked only once the reply is confirmed.
// Protocol (IPC): `ready` once consuming; `expect n` arms a counter (answered `expecting`), `done`
// with the CPU time spent once n messages are handled; `stop` cleans up and exits.

import { createEndpoint, defineMessage, silentLogger } from '@tidings/core';
import { createRabbitMqTransport } from '@tidings/transport-rabbitmq';
import * as amqp from 'amqplib';

const Order = defineMessage<{ id: number; sku: string }>('bench.Order');
const Ack = defineMessage<{ id: number }>('bench.Ack');
/** Requests use their own type, so telling them from one-way sends needs no extra header. */
const Quote = defineMessage<{ id: number; sku: string }>('bench.Quote');

const [impl, queue, url, queueType] = process.argv.slice(2) as [
  'tidings' | 'tidings-express' | 'raw' | 'raw-rpc',
  string,
  string,
  'classic' | 'quorum',
];
/** Handlers in flight (Tidings) and unacked messages (raw prefetch): the hand-written RPC's 100. */
const concurrency = 100;
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

/** Leaves the broker as it was: the queues, and the exchanges the endpoint made per handled type. */
async function deleteQueues(queues: string[], exchanges: string[] = []): Promise<void> {
  const connection = await amqp.connect(url, { noDelay: true });
  const channel = await connection.createChannel();
  for (const name of queues) if (name !== '') await channel.deleteQueue(name);
  for (const name of exchanges) await channel.deleteExchange(name);
  await connection.close();
}

if (impl.startsWith('tidings')) {
  const server = createEndpoint({
    name: queue,
    transport: createRabbitMqTransport({ url, queueType }),
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
  const durable = impl === 'raw';
  const channel = durable
    ? await connection.createConfirmChannel()
    : await connection.createChannel();
  await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': queueType } });
  await channel.prefetch(concurrency, false);
  await channel.consume(queue, (message) => {
    if (message === null) return;
    const order = JSON.parse(message.content.toString('utf8')) as { id: number };
    const { replyTo, correlationId } = message.properties;
    if (!replyTo) {
      channel.ack(message);
      count();
      return;
    }
    const reply = Buffer.from(JSON.stringify({ id: order.id }));
    if (durable) {
      (channel as amqp.ConfirmChannel).sendToQueue(
        replyTo,
        reply,
        { correlationId, persistent: true },
        (error) => {
          if (error) channel.nack(message);
          else channel.ack(message);
          count();
        },
      );
    } else {
      channel.sendToQueue(replyTo, reply, { correlationId });
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
