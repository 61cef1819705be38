import https from 'node:https';
import { ServiceBusAdministrationClient } from '@azure/service-bus';
import { type ServiceBusPeer, startServiceBusPeer } from '@tidings/servicebus-peer';
import type { TestScope } from '@tidings/transport-tests';
import {
  type AdministrationOptions,
  type AzureServiceBusTransportOptions,
  azureServiceBusTransportDefaults,
  createAzureServiceBusTransport,
  type TopologyInstaller,
} from '../../src/index.ts';

/** The installer seam in tests: the peer's own API stands in for ServiceBusAdministrationClient. */
export function peerInstaller(peer: ServiceBusPeer): TopologyInstaller {
  return {
    ensureQueue: async (name, settings) => peer.createQueue(name, settings),
    ensureTopic: async (name) => peer.createTopic(name),
    ensureSubscription: async (topic, name, settings) =>
      peer.createSubscription(topic, name, settings),
    deleteSubscription: async (topic, name) => void peer.deleteSubscription(topic, name),
  };
}

/** Deletes every queue and subscription a test created (their names start with its scope id). */
export function cleanPeer(peer: ServiceBusPeer, prefix: string): void {
  for (const path of peer.entities()) {
    const [topic, , subscription] = path.split('/');
    if (subscription !== undefined) {
      if (subscription.startsWith(prefix)) peer.deleteSubscription(topic as string, subscription);
    } else if (path.startsWith(prefix)) {
      peer.deleteQueue(path);
    }
  }
}

/**
 * Options that make the default installer's management client trust the peer's self-signed
 * certificate (made for 127.0.0.1), with verification left on, and nothing else in the process.
 */
export function peerAdministration(peer: ServiceBusPeer): AdministrationOptions {
  const ca = peer.certificate;
  if (ca === undefined) throw new Error('The peer was started without its management endpoint.');
  return { agent: new https.Agent({ ca, keepAlive: true }) };
}

/**
 * On a namespace, or the peer through its management endpoint: deletes the test's queues and
 * its subscriptions on every topic (their names start with the scope id).
 */
export async function cleanNamespace(
  connectionString: string,
  scope: TestScope,
  administration: AdministrationOptions = {},
): Promise<void> {
  const admin = new ServiceBusAdministrationClient(connectionString, administration);
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

/** What the transport offers, for the conformance suite. */
export const capabilities = {
  delayedDelivery: true,
  nativePublishSubscribe: true,
  maxMessageSizeBytes: azureServiceBusTransportDefaults.maxMessageSizeBytes,
  deliveryCount: true,
  durable: true,
  nativeDeadLetter: true,
} as const;

/** Short timeouts so a send cut off mid-flight is retried within a test's patience. */
export const testSettings = {
  operationTimeoutMs: 5_000,
  maxRetries: 5,
  retryDelayMs: 100,
} as const;

export function peerTransport(
  peer: ServiceBusPeer,
  extra: Partial<AzureServiceBusTransportOptions> = {},
) {
  return createAzureServiceBusTransport({
    connectionString: peer.connectionString,
    installer: peerInstaller(peer),
    ...testSettings,
    ...extra,
  } as AzureServiceBusTransportOptions);
}

export { type ServiceBusPeer, startServiceBusPeer, type TestScope };
