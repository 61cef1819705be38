import { describeTransport } from '@tidings/transport-tests';
import { afterAll, expect } from 'vitest';
import { createAzureServiceBusTransport } from '../src/index.ts';
import {
  capabilities,
  cleanNamespace,
  peerAdministration,
  startServiceBusPeer,
  testSettings,
} from './support/peer.ts';

// The conformance suite as SERVICEBUS_CONNECTION_STRING runs it against a namespace: no
// installer option, so the default one (ServiceBusAdministrationClient) creates every entity,
// here over the test peer's management endpoint, and cleanup lists and deletes through it too.
const peer = await startServiceBusPeer();
const administration = peerAdministration(peer);
afterAll(async () => {
  // Cleanup went through the management endpoint too: only topics (shared by tests) remain.
  expect(peer.entities().filter((path) => !peer.topicExists(path))).toEqual([]);
  administration.agent?.destroy();
  await peer.close();
});

describeTransport({
  name: 'azure-service-bus (test peer, default installer)',
  makeTransport: () =>
    createAzureServiceBusTransport({
      connectionString: peer.connectionString,
      administration,
      ...testSettings,
    }),
  capabilities,
  cleanup: (scope) => cleanNamespace(peer.connectionString, scope, administration),
});
