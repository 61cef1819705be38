import { createEndpoint, defineMessage, type Endpoint, silentLogger } from '@tidings/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdministrationOptions,
  createAdministrationInstaller,
  createAzureServiceBusTransport,
} from '../src/index.ts';
import {
  cleanPeer,
  peerAdministration,
  peerInstaller,
  type ServiceBusPeer,
  startServiceBusPeer,
  testSettings,
} from './support/peer.ts';

// The Microsoft Entra ID path (`fullyQualifiedNamespace` + `credential`), with the peer's test
// credential: the SDK's JWT flow on AMQP (CBS) and Bearer tokens on the management API.
const Ping = defineMessage<{ n: number }>('entra.Ping');
const Pong = defineMessage<{ n: number }>('entra.Pong');

let peer: ServiceBusPeer;
let administration: AdministrationOptions;
let endpoints: Endpoint[] = [];
beforeAll(async () => {
  peer = await startServiceBusPeer({
    identities: [
      { name: 'app', rights: ['Send', 'Listen'] },
      { name: 'owner', rights: ['Manage'] },
    ],
  });
  administration = peerAdministration(peer);
});
afterAll(async () => {
  administration.agent?.destroy();
  await peer.close();
});
afterEach(async () => {
  await Promise.allSettled(endpoints.map((e) => e.stop()));
  endpoints = [];
  cleanPeer(peer, 'entra-');
});

describe('Entra ID credential', () => {
  it('sends, receives and replies with a credential that has the data roles', async () => {
    const transport = () =>
      createAzureServiceBusTransport({
        fullyQualifiedNamespace: peer.credentialNamespace,
        credential: peer.credentialFor('app'),
        installer: peerInstaller(peer),
        ...testSettings,
      });
    const server = createEndpoint({
      name: 'entra-Server',
      transport: transport(),
      logger: silentLogger,
    });
    server.handle(Ping, async (p, ctx) => ctx.reply(Pong, { n: p.n }));
    const client = createEndpoint({
      name: 'entra-Client',
      transport: transport(),
      logger: silentLogger,
      routes: { [Ping.name]: 'entra-Server' },
    });
    endpoints.push(server, client);
    await server.start();
    await client.start();
    const reply = await client.request(Ping, { n: 7 }, { expect: Pong });
    expect(reply.n).toBe(7);
    expect(peer.stats.tokensPut).toBeGreaterThan(0);
  });

  it('the default installer creates entities with an owner credential (Bearer token)', async () => {
    const installer = createAdministrationInstaller(
      {
        fullyQualifiedNamespace: `127.0.0.1:${peer.port}`,
        credential: peer.credentialFor('owner'),
      },
      administration,
    );
    await installer.ensureQueue('entra-made', { maxDeliveryCount: 4 });
    await installer.ensureTopic('entra.Made');
    await installer.ensureSubscription('entra.Made', 'entra-made', { forwardTo: 'entra-made' });
    expect(peer.queueOptions('entra-made')).toEqual({ maxDeliveryCount: 4 });
    expect(peer.subscriptionExists('entra.Made', 'entra-made')).toBe(true);
  });
});
