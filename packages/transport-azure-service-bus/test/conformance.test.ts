import { describeTransport } from '@tidings/transport-tests';
import { afterAll } from 'vitest';
import { createAzureServiceBusTransport } from '../src/index.ts';
import {
  capabilities,
  cleanNamespace,
  cleanPeer,
  peerTransport,
  startServiceBusPeer,
  testSettings,
} from './support/peer.ts';

// SERVICEBUS_CONNECTION_STRING runs the suite against the emulator or a namespace (the default
// installer creates entities there); otherwise against the test peer, which is not Service Bus.
const external = process.env.SERVICEBUS_CONNECTION_STRING;
const peer = external ? undefined : await startServiceBusPeer();
afterAll(() => peer?.close());

describeTransport({
  name: external ? 'azure-service-bus' : 'azure-service-bus (test peer)',
  makeTransport: () =>
    peer
      ? peerTransport(peer)
      : createAzureServiceBusTransport({ connectionString: external as string, ...testSettings }),
  capabilities,
  cleanup: async (scope) => {
    if (peer) cleanPeer(peer, scope.id);
    else await cleanNamespace(external as string, scope);
  },
  timeScale: external ? 3 : 1,
});
