import { Headers } from '@tidings/core';
import { describeTransport } from '@tidings/transport-tests';
import type { ConfirmChannel } from 'amqplib';
import { afterAll } from 'vitest';
import { createRabbitMqTransport, MAX_DELAY_SECONDS } from '../src/index.ts';
import { brokerUrl, deleteTopology, rawConnection } from './broker.ts';

const maxMessageSizeBytes = 256 * 1024;
// The suite's message types: every handled type gets a fanout exchange.
const exchanges = ['Ping', 'Pong', 'Other', 'Work', 'Happened', 'Big'].map(
  (t) => `conformance.${t}`,
);

describeTransport({
  name: 'rabbitmq',
  makeTransport: () => createRabbitMqTransport({ url: brokerUrl, maxMessageSizeBytes }),
  capabilities: {
    delayedDelivery: true,
    nativePublishSubscribe: true,
    maxMessageSizeBytes,
    deliveryCount: true,
    durable: true,
    maxMessageIdBytes: 255,
    maxHeaderNameBytes: 255,
    maxDelayMs: MAX_DELAY_SECONDS * 1000,
  },
  cleanup: (scope) => deleteTopology(scope.queues),
  packed: {
    // As `amqp-publish` or another client would: the headers table as given.
    send: (_scope, queue, entries, body) =>
      withChannel(async (channel) => {
        channel.sendToQueue(queue, Buffer.from(body), {
          headers: { ...entries },
          persistent: true,
        });
        await channel.waitForConfirms();
      }),
    // As the management UI's "get messages" does: read, then put back.
    peek: (_scope, queue, messageId) =>
      withChannel(async (channel) => {
        let found: Record<string, string> | undefined;
        for (;;) {
          const message = await channel.get(queue, { noAck: false });
          if (message === false) break;
          const text: Record<string, string> = {};
          for (const [name, value] of Object.entries(message.properties.headers ?? {})) {
            text[name] = Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
          }
          if (text[Headers.MessageId] === messageId) found = text;
        }
        // Closing the channel puts back what it got.
        return found;
      }),
  },
});

async function withChannel<T>(run: (channel: ConfirmChannel) => Promise<T>): Promise<T> {
  const connection = await rawConnection();
  try {
    return await run(await connection.createConfirmChannel());
  } finally {
    await connection.close();
  }
}

afterAll(() => deleteTopology([], exchanges));
