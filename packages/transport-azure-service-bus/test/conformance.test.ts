import { ServiceBusClient } from '@azure/service-bus';
import { Headers } from '@tidings/core';
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
  packed: {
    // As another client would: the application properties as given.
    send: (_scope, queue, entries, body) =>
      withClient(async (client) => {
        const sender = client.createSender(queue);
        await sender.sendMessages({
          body: Buffer.from(body),
          messageId: entries[Headers.MessageId] as string,
          applicationProperties: { ...entries },
        });
        await sender.close();
      }),
    // As Service Bus Explorer does: peeked, left where it is.
    peek: (_scope, queue, messageId) =>
      withClient(async (client) => {
        const receiver = client.createReceiver(queue);
        const peeked = await receiver.peekMessages(100);
        await receiver.close();
        let found: Record<string, string> | undefined;
        for (const message of peeked) {
          const text: Record<string, string> = {};
          for (const [name, value] of Object.entries(message.applicationProperties ?? {})) {
            text[name] = String(value);
          }
          text[Headers.MessageId] ??= String(message.messageId);
          if (text[Headers.MessageId] === messageId) found = text;
        }
        return found;
      }),
  },
});

async function withClient<T>(run: (client: ServiceBusClient) => Promise<T>): Promise<T> {
  const client = new ServiceBusClient(peer ? peer.connectionString : (external as string));
  try {
    return await run(client);
  } finally {
    await client.close();
  }
}
