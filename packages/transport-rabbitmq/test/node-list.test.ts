import {
  ConfigurationError,
  createEndpoint,
  defineMessage,
  type Endpoint,
  silentLogger,
  TransportUnavailableError,
} from '@tidings/core';
import { recordingLogger } from '@tidings/transport-tests';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import { brokerUrl, deleteTopology } from './broker.ts';
import { disposeEndpoints, uniquePrefix } from './helpers.ts';
import { type BrokerProxy, startTcpProxy } from './tcp-proxy.ts';

const Work = defineMessage<{ n: number }>('rmqnodes.Work');
const topology = { endpointName: 'never', errorQueue: 'never-error', subscriptions: [] };

/** A URL with this password on a port where nothing listens. */
const deadNode = (password: string) => `amqp://u:${password}@127.0.0.1:1`;

describe('node list options', () => {
  it('takes `url` or a non-empty `urls`, not both, and a known nodeOrder', () => {
    expect(() => createRabbitMqTransport({})).toThrow(ConfigurationError);
    expect(() => createRabbitMqTransport({ urls: [] })).toThrow(ConfigurationError);
    expect(() => createRabbitMqTransport({ urls: [brokerUrl, ''] })).toThrow(ConfigurationError);
    expect(() => createRabbitMqTransport({ url: brokerUrl, urls: [brokerUrl] })).toThrow(
      /not both/,
    );
    expect(() =>
      createRabbitMqTransport({ urls: [brokerUrl], nodeOrder: 'random' as 'shuffled' }),
    ).toThrow(ConfigurationError);
    expect(() => createRabbitMqTransport({ urls: [brokerUrl, 'http://u:p@host'] })).toThrow(
      /amqp:\/\/ or amqps:\/\//,
    );
    expect(() => createRabbitMqTransport({ url: brokerUrl, quorumInitialGroupSize: 0 })).toThrow(
      ConfigurationError,
    );
    expect(createRabbitMqTransport({ urls: [brokerUrl, brokerUrl] }).name).toBe('rabbitmq');
  });

  it('no node answers: TransportUnavailableError naming every node, no password', async () => {
    const transport = createRabbitMqTransport({
      urls: [deadNode('first-secret'), deadNode('second-secret')],
    });
    const error = await transport.openEndpoint(topology, { logger: silentLogger }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect(error?.message).toContain('cluster nodes');
    expect(error?.message).not.toMatch(/first-secret|second-secret/);
    expect(JSON.stringify(error?.cause ?? null)).not.toMatch(/first-secret|second-secret/);
  });
});

describe('node list failover', () => {
  const endpoints: Endpoint[] = [];
  const queues: string[] = [];
  const proxies: BrokerProxy[] = [];
  afterEach(async () => {
    await disposeEndpoints(endpoints.splice(0), queues.splice(0));
    await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
  });
  afterAll(() => deleteTopology([], [Work.name]));

  it('opens on the first node that answers', async () => {
    const prefix = uniquePrefix('nodes-open');
    queues.push(`${prefix}-error`);
    const endpoint = createEndpoint({
      name: `${prefix}-Client`,
      transport: createRabbitMqTransport({ urls: [deadNode('x'), brokerUrl] }),
      logger: silentLogger,
      sendOnly: true,
      routes: { [Work.name]: `${prefix}-Client` },
      recoverability: { errorQueue: `${prefix}-error` },
    });
    endpoints.push(endpoint);
    await endpoint.start();
    await endpoint.publish(Work, { n: 1 });
  });

  it('a lost node: reconnects to the next one at once, without the backoff', {
    timeout: 60_000,
  }, async () => {
    const prefix = uniquePrefix('nodes-failover');
    const errorQueue = `${prefix}-error`;
    queues.push(errorQueue);
    const first = await startTcpProxy(brokerUrl);
    const second = await startTcpProxy(brokerUrl);
    proxies.push(first, second);
    const logger = recordingLogger();
    // A backoff this long would outlast the send timeout: only an immediate move can succeed.
    const transport = () =>
      createRabbitMqTransport({
        urls: [first.url, second.url],
        reconnectInitialDelayMs: 60_000,
        reconnectMaxDelayMs: 60_000,
        unavailableTimeoutMs: 15_000,
      });
    const seen = new Set<number>();
    const server = createEndpoint({
      name: `${prefix}-Server`,
      transport: transport(),
      logger,
      recoverability: { errorQueue },
    });
    server.handle(Work, async ({ n }) => {
      seen.add(n);
    });
    endpoints.push(server);
    await server.start();
    const sender = createEndpoint({
      name: `${prefix}-Client`,
      transport: transport(),
      logger,
      sendOnly: true,
      routes: { [Work.name]: `${prefix}-Server` },
      recoverability: { errorQueue },
    });
    endpoints.push(sender);
    await sender.start();
    for (let n = 0; n < 50; n++) await sender.send(Work, { n });
    expect(first.connections).toBeGreaterThan(0);
    expect(second.connections).toBe(0);

    first.pause();
    first.cut();
    for (let n = 50; n < 100; n++) await sender.send(Work, { n });
    await expect.poll(() => seen.size, { timeout: 15_000 }).toBe(100);
    expect(first.connections).toBe(0);
    expect(second.connections).toBeGreaterThan(0);
  });
});
