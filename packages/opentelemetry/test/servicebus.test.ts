import { startServiceBusPeer } from '@tidings/servicebus-peer';
import { createAzureServiceBusTransport } from '@tidings/transport-azure-service-bus';
import { afterAll } from 'vitest';
import { describeTracing } from './describe-tracing.ts';
import { registerTestSdk } from './sdk.ts';

const sdk = registerTestSdk();
// The AMQP 1.0 peer that plays Service Bus (packages/servicebus-peer), driven by the real SDK.
const peer = await startServiceBusPeer();
afterAll(() => peer.close());

describeTracing(sdk, {
  name: 'azure-service-bus (test peer)',
  system: 'servicebus',
  makeTransport: () =>
    createAzureServiceBusTransport({
      connectionString: peer.connectionString,
      installer: {
        ensureQueue: async (name, settings) => peer.createQueue(name, settings),
        ensureTopic: async (name) => peer.createTopic(name),
        ensureSubscription: async (topic, name, settings) =>
          peer.createSubscription(topic, name, settings),
        deleteSubscription: async (topic, name) => void peer.deleteSubscription(topic, name),
      },
      operationTimeoutMs: 5_000,
      maxRetries: 5,
      retryDelayMs: 100,
    }),
  cleanup: async (scope) => {
    for (const path of peer.entities()) {
      const [topic, , subscription] = path.split('/');
      if (subscription !== undefined) {
        if (subscription.startsWith(scope.id))
          peer.deleteSubscription(topic as string, subscription);
      } else if (path.startsWith(scope.id)) peer.deleteQueue(path);
    }
  },
});
