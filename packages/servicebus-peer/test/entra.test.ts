import {
  isServiceBusError,
  ServiceBusAdministrationClient,
  ServiceBusClient,
} from '@azure/service-bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PeerCredential, type ServiceBusPeer, startServiceBusPeer } from '../src/index.ts';

// Microsoft Entra ID: the SDK's credential flow (CBS put-token of type jwt, Bearer on the
// management API) with the peer's test credential, rights from role assignments.
let peer: ServiceBusPeer;
const wait = { timeout: 15_000, interval: 20 };
const noRetries = { retryOptions: { maxRetries: 0, timeoutInMs: 5_000 } };

beforeAll(async () => {
  peer = await startServiceBusPeer({
    identities: [
      { name: 'owner', rights: ['Manage'] },
      { name: 'receiver', rights: ['Listen'] },
    ],
  });
});
afterAll(() => peer.close());

const codeOf = (operation: Promise<unknown>) =>
  operation.then(
    () => 'ok',
    (error: unknown) =>
      isServiceBusError(error) ? error.code : String((error as { code?: string }).code ?? error),
  );
const amqp = (credential: PeerCredential) =>
  new ServiceBusClient(peer.credentialNamespace, credential as never, noRetries);

describe('servicebus peer, Entra ID tokens', () => {
  it('sends and receives with a credential; its role assignments decide what it may do', async () => {
    peer.createQueue('entra');
    const owner = amqp(peer.credentialFor('owner'));
    const receiverOnly = amqp(peer.credentialFor('receiver'));
    try {
      await owner.createSender('entra').sendMessages({ body: 'hello' });
      expect(await codeOf(receiverOnly.createSender('entra').sendMessages({ body: 'no' }))).toBe(
        'UnauthorizedAccess',
      );
      const receiver = receiverOnly.createReceiver('entra');
      const [message] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5_000 });
      expect(message?.body).toBe('hello');
      await receiver.completeMessage(message as never);
    } finally {
      await owner.close();
      await receiverOnly.close();
    }
  });

  it('accepts a Bearer token on the management API from an owner only', async () => {
    const admin = (identity: string) =>
      new ServiceBusAdministrationClient(
        `127.0.0.1:${peer.port}`,
        peer.credentialFor(identity) as never,
        { tlsOptions: { ca: peer.certificate as string }, retryOptions: { maxRetries: 0 } },
      );
    await admin('owner').createQueue('entra-managed');
    expect(peer.queueExists('entra-managed')).toBe(true);
    const refused = await admin('receiver')
      .getQueue('entra-managed')
      .then(
        () => undefined,
        (e: unknown) => e as { statusCode?: number },
      );
    expect(refused?.statusCode).toBe(401);
  });

  it('the SDK renews its token before it expires; the link stays and delivers', async () => {
    peer.createQueue('entra-renewed');
    // The SDK renews a JWT 2 minutes before it expires: here about a second after it got it.
    const credential = peer.credentialFor('owner', { lifetimeMs: 2 * 60_000 + 1_000 });
    const client = amqp(credential);
    const received: unknown[] = [];
    const receiver = client.createReceiver('entra-renewed');
    const subscription = receiver.subscribe({
      processMessage: async (message) => {
        received.push(message.body);
        await receiver.completeMessage(message);
      },
      processError: async () => {},
    });
    try {
      await expect.poll(() => peer.receiverCount('entra-renewed'), wait).toBe(1);
      const put = peer.stats.tokensPut;
      await expect.poll(() => credential.tokensIssued, wait).toBeGreaterThan(2);
      await expect.poll(() => peer.stats.tokensPut, wait).toBeGreaterThan(put);
      await client.createSender('entra-renewed').sendMessages({ body: 'still here' });
      await expect.poll(() => received, wait).toEqual(['still here']);
    } finally {
      await subscription.close();
      await client.close();
    }
  });

  it('detaches a link whose token expired without renewal; the SDK attaches again with a new one', async () => {
    peer.createQueue('entra-expired');
    // The client believes its token lasts an hour; it runs out after 1.5 s.
    const credential = peer.credentialFor('owner', { tokenLifetimeMs: 1_500 });
    const client = amqp(credential);
    const errors: string[] = [];
    const receiver = client.createReceiver('entra-expired');
    const subscription = receiver.subscribe({
      processMessage: async () => {},
      processError: async (args) => {
        errors.push(isServiceBusError(args.error) ? args.error.code : String(args.error));
      },
    });
    try {
      await expect.poll(() => errors, wait).toContain('UnauthorizedAccess');
      await expect.poll(() => peer.receiverCount('entra-expired'), wait).toBe(1);
      expect(credential.tokensIssued).toBeGreaterThan(1);
    } finally {
      await subscription.close();
      await client.close();
    }
  });
});
