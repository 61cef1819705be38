import { ServiceBusClient } from '@azure/service-bus';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { enableTcpNoDelay } from '../src/index.ts';
import { type ServiceBusPeer, startServiceBusPeer } from './support/peer.ts';

let peer: ServiceBusPeer;
beforeAll(async () => {
  peer = await startServiceBusPeer();
  peer.createQueue('nodelay');
});
afterAll(() => peer.close());

/** rhea's own view of the option on the SDK's current connection (reached as enableTcpNoDelay does). */
const noDelayOf = (client: ServiceBusClient): unknown =>
  (
    client as unknown as {
      _connectionContext: {
        connection: { _connection: { get_option(name: string, fallback: unknown): unknown } };
      };
    }
  )._connectionContext.connection._connection.get_option('tcp_no_delay', false);

it('turns on TCP_NODELAY for the SDK connection, and keeps it for the connection after a cut', async () => {
  const client = new ServiceBusClient(peer.connectionString, {
    retryOptions: { timeoutInMs: 3000, retryDelayInMs: 50 },
  });
  // If an SDK update moves the internals this relies on, this fails here and not in production.
  expect(enableTcpNoDelay(client)).toBe(true);
  const sender = client.createSender('nodelay');
  await sender.sendMessages({ body: 1 });
  expect(noDelayOf(client)).toBe(true);
  peer.dropConnections();
  await sender.sendMessages({ body: 2 });
  expect(noDelayOf(client)).toBe(true);
  expect(peer.messages('nodelay').map((m) => m.body)).toHaveLength(2);
  await client.close();
});
