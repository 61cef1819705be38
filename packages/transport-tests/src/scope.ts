import { randomBytes } from 'node:crypto';
import {
  createEndpoint,
  type Endpoint,
  type EndpointOptions,
  silentLogger,
  type Transport,
} from '@tidings/core';
import type { IncomingTransportMessage, TransportEndpoint } from '@tidings/core/transport';

/** One test's world: unique names, the endpoints it made, and what to clean up. */
export interface TestScope {
  /** Unique per test; every queue name the test uses starts with it. */
  readonly id: string;
  /** Every queue name the test used (endpoint, instance and error queues), for cleanup. */
  readonly queues: string[];
  /** Transports made for this scope, closed after the test by the suite. */
  readonly transports: Transport[];
}

export interface ScopeHelpers {
  readonly scope: TestScope;
  readonly errorQueue: string;
  /** A queue name unique to this test. */
  name(suffix: string): string;
  /** Creates (not starts) an endpoint on a transport of its own, as a separate process would. */
  endpoint(
    suffix: string,
    options?: Omit<EndpointOptions, 'name' | 'transport'> & { transport?: Transport },
  ): Promise<Endpoint>;
  /** Creates and starts. */
  started(
    suffix: string,
    options?: Omit<EndpointOptions, 'name' | 'transport'>,
    setup?: (endpoint: Endpoint) => void,
  ): Promise<Endpoint>;
  /** Reads a queue through the SPI: every message that arrives is recorded, then completed. */
  readQueue(queue: string): Promise<{ readonly messages: IncomingTransportMessage[] }>;
  /** A raw SPI connection with no input queue, for sending hand-made messages. */
  rawSender(): Promise<TransportEndpoint>;
  dispose(): Promise<void>;
}

let counter = 0;

export function createScope(
  makeTransport: (scope: TestScope) => Transport | Promise<Transport>,
): ScopeHelpers {
  const id = `ct${randomBytes(3).toString('hex')}${(counter++).toString(36)}`;
  const scope: TestScope = { id, queues: [], transports: [] };
  const endpoints: Endpoint[] = [];
  const connections: TransportEndpoint[] = [];
  const errorQueue = `${id}-error`;
  scope.queues.push(errorQueue);
  const newTransport = async () => {
    const transport = await makeTransport(scope);
    scope.transports.push(transport);
    return transport;
  };
  const name = (suffix: string) => {
    const queue = `${id}-${suffix}`;
    if (!scope.queues.includes(queue)) scope.queues.push(queue);
    return queue;
  };
  const helpers: ScopeHelpers = {
    scope,
    errorQueue,
    name,
    async endpoint(suffix, options = {}) {
      const { transport, ...rest } = options;
      const endpoint = createEndpoint({
        logger: silentLogger,
        ...rest,
        recoverability: { errorQueue, ...rest.recoverability },
        name: name(suffix),
        transport: transport ?? (await newTransport()),
      });
      if (endpoint.instanceQueue) scope.queues.push(endpoint.instanceQueue);
      endpoints.push(endpoint);
      return endpoint;
    },
    async started(suffix, options, setup) {
      const endpoint = await helpers.endpoint(suffix, options);
      setup?.(endpoint);
      await endpoint.start();
      return endpoint;
    },
    async readQueue(queue) {
      const transport = await newTransport();
      const messages: IncomingTransportMessage[] = [];
      const connection = await transport.openEndpoint(
        { endpointName: queue, inputQueue: queue, errorQueue, subscriptions: [] },
        { logger: silentLogger },
      );
      connections.push(connection);
      await connection.startReceiving({
        concurrency: 8,
        onMessage: async (message) => {
          messages.push(message);
          return 'complete';
        },
      });
      return { messages };
    },
    async rawSender() {
      const transport = await newTransport();
      const connection = await transport.openEndpoint(
        { endpointName: `${id}-raw`, errorQueue, subscriptions: [] },
        { logger: silentLogger },
      );
      connections.push(connection);
      return connection;
    },
    async dispose() {
      await Promise.allSettled(endpoints.map((endpoint) => endpoint.stop()));
      await Promise.allSettled(
        connections.map(async (connection) => {
          await connection.stopReceiving();
          await connection.close();
        }),
      );
    },
  };
  return helpers;
}
