import https from 'node:https';
import type { Socket } from 'node:net';
import { ServiceBusAdministrationClient } from '@azure/service-bus';
import { type ServiceBusPeer, startServiceBusPeer } from '@tidings/servicebus-peer';
import type { TestScope } from '@tidings/transport-tests';
import {
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
 * Makes this process trust the peer's self-signed certificate for connections to the peer's
 * address only, with verification left on. Needed where the SDK's administration client is
 * built without options (the default installer): @azure/core-rest-pipeline then connects
 * through an `https.Agent` of its own (keep-alive, no tlsSettings; see @typespec/ts-http-runtime
 * nodeHttpClient getOrCreateAgent), not `https.globalAgent`, so no agent option reaches it and
 * Node 20 cannot add a CA to the default store at run time. Every https.Agent opens its
 * sockets through `createConnection`, which is where the peer's CA is added. Returns the undo.
 */
export function trustPeerCertificate(peer: ServiceBusPeer): () => void {
  const ca = peer.certificate;
  if (ca === undefined) throw new Error('The peer was started without its management endpoint.');
  type CreateConnection = (options: Record<string, unknown>, callback?: unknown) => Socket;
  const agent = https.Agent.prototype as unknown as { createConnection: CreateConnection };
  const original = agent.createConnection;
  agent.createConnection = function (this: unknown, options, callback) {
    const toPeer =
      (options.host === '127.0.0.1' || options.hostname === '127.0.0.1') &&
      Number(options.port) === peer.port;
    return original.call(this, toPeer ? { ...options, ca } : options, callback);
  };
  return () => {
    agent.createConnection = original;
  };
}

/**
 * On a namespace, or the peer through its management endpoint: deletes the test's queues and
 * its subscriptions on every topic (their names start with the scope id).
 */
export async function cleanNamespace(connectionString: string, scope: TestScope): Promise<void> {
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
