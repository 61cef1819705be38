import {
  createEndpoint,
  defineMessage,
  type Endpoint,
  silentLogger,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanPeer,
  peerTransport,
  type ServiceBusPeer,
  startServiceBusPeer,
} from './support/peer.ts';

// What a busy, full or disabled namespace answers, injected at the peer and met through the
// transport as an application meets it.
const Work = defineMessage<{ n: number }>('service.Work');
const wait = { timeout: 20_000, interval: 20 };

let peer: ServiceBusPeer;
let endpoints: Endpoint[] = [];
beforeAll(async () => {
  peer = await startServiceBusPeer({ management: false });
});
afterAll(() => peer.close());
afterEach(async () => {
  await Promise.allSettled(endpoints.map((e) => e.stop()));
  endpoints = [];
  cleanPeer(peer, 'service-');
});

async function sender(maxRetries: number) {
  const endpoint = createEndpoint({
    name: 'service-Sender',
    transport: peerTransport(peer, { maxRetries, retryDelayMs: 10 }),
    logger: silentLogger,
    sendOnly: true,
    routes: { [Work.name]: 'service-Server' },
  });
  endpoints.push(endpoint);
  await endpoint.start();
  return endpoint;
}

const failure = (operation: Promise<unknown>) =>
  operation.then(
    () => undefined,
    (error: unknown) => error as TransportError,
  );

describe('service faults through the transport', () => {
  it('server busy: retried by the SDK, then a retryable TransportUnavailableError', async () => {
    peer.createQueue('service-Server');
    const endpoint = await sender(2);
    peer.refuseNextSends(2, 'com.microsoft:server-busy');
    await endpoint.send(Work, { n: 1 });
    expect(peer.messages('service-Server')).toHaveLength(1);
    peer.refuseNextSends(3, 'com.microsoft:server-busy');
    const error = await failure(endpoint.send(Work, { n: 2 }));
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect(error?.isRetryable).toBe(true);
    expect(error?.message).toMatch(/ServiceBusy/);
    expect(peer.messages('service-Server')).toHaveLength(1);
  });

  it('quota exceeded (resource-limit-exceeded): a retryable TransportError', async () => {
    peer.createQueue('service-Server');
    const endpoint = await sender(0);
    peer.refuseNextSends(1, 'amqp:resource-limit-exceeded');
    const error = await failure(endpoint.send(Work, { n: 1 }));
    expect(error).toBeInstanceOf(TransportError);
    expect(error?.isRetryable).toBe(true);
    expect(error?.message).toMatch(/QuotaExceeded/);
    await endpoint.send(Work, { n: 2 });
    expect(peer.messages('service-Server')).toHaveLength(1);
  });

  it('a disabled entity: not retryable; sends succeed once it is enabled again', async () => {
    peer.createQueue('service-Server');
    peer.disableEntity('service-Server');
    const endpoint = await sender(1);
    const error = await failure(endpoint.send(Work, { n: 1 }));
    expect(error).toBeInstanceOf(TransportError);
    expect(error?.isRetryable).toBe(false);
    expect(error?.message).toMatch(/MessagingEntityDisabled/);
    peer.enableEntity('service-Server');
    await expect
      .poll(
        () => endpoint.send(Work, { n: 2 }).then(() => peer.messages('service-Server').length),
        wait,
      )
      .toBe(1);
  });

  it('a receiving endpoint whose queue is disabled and enabled again receives again', async () => {
    const handled: number[] = [];
    const server = createEndpoint({
      name: 'service-Server',
      transport: peerTransport(peer),
      logger: silentLogger,
    });
    server.handle(Work, (p) => void handled.push(p.n));
    endpoints.push(server);
    await server.start();
    await expect.poll(() => peer.receiverCount('service-Server'), wait).toBe(1);
    peer.disableEntity('service-Server');
    expect(peer.receiverCount('service-Server')).toBe(0);
    peer.enableEntity('service-Server');
    const endpoint = await sender(2);
    await endpoint.send(Work, { n: 1 });
    await expect.poll(() => handled, wait).toEqual([1]);
  }, 40_000);
});
