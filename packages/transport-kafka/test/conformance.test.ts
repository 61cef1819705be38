import { describeTransport } from '@tidings/transport-tests';
import { createKafkaTransport, type KafkaTransport } from '../src/index.ts';
import { testOptions } from './kafka-test-options.ts';

const made = new Map<string, KafkaTransport[]>();

describeTransport({
  name: 'kafka',
  makeTransport: (scope) => {
    const transport = createKafkaTransport(testOptions({ maxMessageSizeBytes: 64 * 1024 }));
    made.set(scope.id, [...(made.get(scope.id) ?? []), transport]);
    return transport;
  },
  capabilities: {
    delayedDelivery: false,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: 64 * 1024,
    deliveryCount: false,
    durable: true,
    partitionedQueues: true,
  },
  cleanup: async (scope) => {
    await Promise.allSettled((made.get(scope.id) ?? []).map((t) => t.close()));
    made.delete(scope.id);
  },
});
