import { type ServiceBusPeer, startServiceBusPeer } from '@tidings/servicebus-peer';
import type { TestScope } from '@tidings/transport-tests';
import {
  type AzureServiceBusTransportOptions,
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
