import { ServiceBusAdministrationClient } from '@azure/service-bus';
import { describeTransport, type TestScope } from '@tidings/transport-tests';
import { afterAll } from 'vitest';
import { azureServiceBusTransportDefaults, createAzureServiceBusTransport } from '../src/index.ts';
import { cleanPeer, peerTransport, startServiceBusPeer, testSettings } from './support/peer.ts';

// SERVICEBUS_CONNECTION_STRING runs the suite against the emulator or a namespace (the default
// installer creates entities there); otherwise against the test peer, which is not Service Bus.
const external = process.env.SERVICEBUS_CONNECTION_STRING;
const peer = external ? undefined : await startServiceBusPeer();
afterAll(() => peer?.close());

/** On a real namespace: delete the test's queues and its subscriptions on every topic. */
async function cleanNamespace(connectionString: string, scope: TestScope): Promise<void> {
  const admin = new ServiceBusAdministrationClient(connectionString);
  for await (const queue of admin.listQueues()) {
    if (queue.name.startsWith(scope.id)) await admin.deleteQueue(queue.name).catch(() => {});
  }
  for await (const topic of admin.listTopics()) {
    for await (const subscription of admin.listSubscriptions(topic.name)) {
      if (subscription.subscriptionName.startsWith(scope.id)) {
        await admin.deleteSubscription(topic.name, subscription.subscriptionName).catch(() => {});
      }
    }
  }
}

describeTransport({
  name: external ? 'azure-service-bus' : 'azure-service-bus (test peer)',
  makeTransport: () =>
    peer
      ? peerTransport(peer)
      : createAzureServiceBusTransport({ connectionString: external as string, ...testSettings }),
  capabilities: {
    delayedDelivery: true,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: azureServiceBusTransportDefaults.maxMessageSizeBytes,
    deliveryCount: true,
    durable: true,
    nativeDeadLetter: true,
  },
  cleanup: async (scope) => {
    if (peer) cleanPeer(peer, scope.id);
    else await cleanNamespace(external as string, scope);
  },
  timeScale: external ? 3 : 1,
});
