import { createRabbitMqTransport } from '@tidings/transport-rabbitmq';
import * as amqp from 'amqplib';
import { afterAll } from 'vitest';
import { describeTracing, tracingMessageTypes } from './describe-tracing.ts';
import { registerTestSdk } from './sdk.ts';

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
