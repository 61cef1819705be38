import { describeTransport } from '@tidings/transport-tests';
import { afterAll } from 'vitest';
import { createRabbitMqTransport, MAX_DELAY_SECONDS } from '../src/index.ts';
import { brokerUrl, deleteTopology } from './broker.ts';

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
});

afterAll(() => deleteTopology([], exchanges));
