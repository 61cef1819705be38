import {
  createEndpoint,
  createInMemoryTransport,
  defineMessage,
  silentLogger,
} from '@tidings/core';
import type { TransportEndpoint } from '@tidings/core/transport';
import { describe, expect, it } from 'vitest';
import { createOpenTelemetry } from '../src/index.ts';

const Ping = defineMessage<{ n: number }>('nosdk.Ping');
const Pong = defineMessage<{ n: number }>('nosdk.Pong');

// No SDK registered in this file: the API's no-op tracer, meter, propagator and context.
describe('with no SDK registered', () => {
  it('observes nothing: the endpoint runs as without an instrumentation', async () => {
    const connection = {} as TransportEndpoint;
    const observed = createOpenTelemetry().instrumentEndpoint(
      {
        endpointName: 'X',
        instanceId: 'x',
        transportName: 'in-memory',
        maxMessageSizeBytes: 1024,
        logger: silentLogger,
      },
      connection,
    );
    expect(observed).toBeUndefined();
  });

  it('a request and its reply work, and carry no trace headers', async () => {
    const transport = createInMemoryTransport();
    const instrumentation = createOpenTelemetry();
    const seen: Array<Readonly<Record<string, string>>> = [];
    const server = createEndpoint({
      name: 'NoSdkServer',
      transport,
      instrumentation,
      logger: silentLogger,
    });
    server.useIncoming(async (incoming, next) => {
      seen.push(incoming.headers);
      await next();
    });
    server.handle(Ping, (ping, ctx) => ctx.reply(Pong, { n: ping.n + 1 }));
    const client = createEndpoint({
      name: 'NoSdkClient',
      transport,
      instrumentation,
      logger: silentLogger,
      routes: { [Ping.name]: 'NoSdkServer' },
    });
    await server.start();
    await client.start();
    try {
      expect(await client.request(Ping, { n: 1 }, { expect: Pong })).toEqual({ n: 2 });
      expect(seen).toHaveLength(1);
      expect(seen[0]?.traceparent).toBeUndefined();
    } finally {
      await client.stop();
      await server.stop();
    }
  });
});
