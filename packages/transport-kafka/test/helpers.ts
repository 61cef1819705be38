import { randomBytes } from 'node:crypto';
import {
  createEndpoint,
  type Endpoint,
  type EndpointOptions,
  Headers,
  silentLogger,
  type Transport,
} from '@tidings/core';
import type { IncomingTransportMessage, TransportEndpoint } from '@tidings/core/transport';
import {
  createKafkaTransport,
  type KafkaTransport,
  type KafkaTransportOptions,
} from '../src/index.ts';
import { testOptions } from './kafka-test-options.ts';

/** A test's own names, and everything it starts, stopped at the end. */
export function testWorld() {
  const id = `kt${randomBytes(3).toString('hex')}`;
  const endpoints: Endpoint[] = [];
  const transports: KafkaTransport[] = [];
  return {
    id,
    name: (suffix: string) => `${id}-${suffix}`,
    errorQueue: `${id}-error`,
    transport(overrides: Partial<KafkaTransportOptions> = {}) {
      const transport = createKafkaTransport(testOptions(overrides));
      transports.push(transport);
      return transport;
    },
    endpoint(
      suffix: string,
      options: Omit<EndpointOptions, 'name' | 'transport'> & { transport?: KafkaTransport } = {},
    ): Endpoint {
      const { transport, ...rest } = options;
      const endpoint = createEndpoint({
        logger: silentLogger,
        ...rest,
        recoverability: { errorQueue: `${id}-error`, ...rest.recoverability },
        name: `${id}-${suffix}`,
        transport: transport ?? this.transport(),
      });
      endpoints.push(endpoint);
      return endpoint;
    },
    async dispose() {
      await Promise.allSettled(endpoints.map((e) => e.stop()));
      await Promise.allSettled(transports.map((t) => t.close()));
    },
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads a queue's topic through the SPI (on `transport`, else a new one), recording every message. */
export async function readQueue(
  world: ReturnType<typeof testWorld>,
  queue: string,
  transport: Transport = world.transport(),
) {
  const messages: IncomingTransportMessage[] = [];
  const connection = await transport.openEndpoint(
    { endpointName: queue, inputQueue: queue, errorQueue: world.errorQueue, subscriptions: [] },
    { logger: silentLogger },
  );
  await connection.startReceiving({
    concurrency: 4,
    onMessage: async (message) => {
      messages.push(message);
      return 'complete';
    },
  });
  return {
    messages,
    connection,
    close: async () => {
      await connection.stopReceiving();
      await connection.close();
    },
  };
}

/** Publishes an event with nothing but a message id, through the SPI. */
export const publishRaw = (connection: TransportEndpoint, messageType: string, id: string) =>
  connection.dispatch([
    {
      message: { messageId: id, headers: { [Headers.MessageId]: id }, body: Buffer.from('{}') },
      destination: { kind: 'publish', messageType },
    },
  ]);
