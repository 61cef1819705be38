import {
  createEndpoint,
  createJsonSerializer,
  defineMessage,
  type Endpoint,
  type MessageDefinition,
  type Serializer,
  silentLogger,
  type Transport,
  TransportUnavailableError,
} from '@tidings/core';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { tidingsPlugin } from '../src/index.ts';
import { type Bus, Quote, startBus } from './fixtures.ts';

let bus: Bus;
const apps: FastifyInstance[] = [];
const endpoints: Endpoint[] = [];

beforeEach(async () => {
  bus = await startBus();
});
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  for (const endpoint of endpoints.splice(0)) await endpoint.stop();
  await bus.stop();
});

/** A server whose one route asks for a quote (of `to`, if given) with `options`. */
async function quoteServer(
  web: Endpoint,
  options: { expect?: MessageDefinition },
  to?: string,
): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  apps.push(app);
  await app.register(tidingsPlugin, { endpoint: web, timeoutMs: 60_000 });
  app.post('/quote', async (request) =>
    request.awaitReply(
      Quote,
      request.body as never,
      {
        ...options,
        ...(to === undefined ? {} : { to }),
      } as never,
    ),
  );
  return app;
}

const quote = { sku: 'a', amount: 2 };

describe('a reply the web side cannot use is the far side’s fault: 502', () => {
  it('a reply that fails the expected schema answers 502, not 400, without the issues', async () => {
    // The backend replies { sku, price: 4 }; this side expects price to be a string.
    const StrictQuoted = defineMessage(
      'test.Quoted',
      z.object({ sku: z.string(), price: z.string() }),
    );
    const app = await quoteServer(bus.web(), { expect: StrictQuoted });
    const response = await app.inject({ method: 'POST', url: '/quote', payload: quote });
    expect(response.statusCode).toBe(502);
    expect(response.json()).toMatchObject({ code: 'TIDINGS_VALIDATION' });
    expect(response.json().message).toBe(
      "The reply to 'test.Quote' failed the schema of the message expected.",
    );
    expect(response.body).not.toMatch(/price|string|number/i);
  });

  it('a reply body that is not valid JSON answers 502 with a generic message, never its bytes', async () => {
    const json = createJsonSerializer();
    // Writes a broken body under the JSON content type, as a buggy or foreign service might.
    const broken: Serializer = {
      contentType: json.contentType,
      serialize: () => Buffer.from('internal-db-row: id=42 secret=s3cr3t {'),
      deserialize: json.deserialize,
    };
    const bad = createEndpoint({
      name: 'BrokenBackend',
      transport: bus.transport,
      logger: silentLogger,
      serializer: broken,
    });
    endpoints.push(bad);
    bad.handle(Quote, async (q, ctx) => ctx.reply(defineMessage('test.Quoted'), { sku: q.sku }));
    await bad.start();
    const app = await quoteServer(bus.web(), {}, 'BrokenBackend');
    let logged: unknown;
    app.addHook('onError', async (_request, _reply, error) => {
      logged = error;
    });
    const response = await app.inject({ method: 'POST', url: '/quote', payload: quote });
    expect(response.statusCode).toBe(502);
    expect(response.json()).toEqual({
      statusCode: 502,
      code: 'TIDINGS_DESERIALIZATION',
      error: 'Bad Gateway',
      message: "The reply to 'test.Quote' could not be read.",
    });
    expect(response.body).not.toMatch(/secret|s3cr3t|internal-db-row/);
    // The details stay on the error, for the log.
    expect(String((logged as { cause: Error }).cause.message)).toMatch(/not valid JSON/);
  });
});

describe('transport outages', () => {
  it('answer 503 with a generic body: the broker address goes to the log only', async () => {
    const address = 'kafka-3.internal.example:9092';
    // A transport whose dispatch fails as a broker outage does, naming the broker.
    const down: Transport = {
      ...bus.transport,
      async openEndpoint(settings, context) {
        const connection = await bus.transport.openEndpoint(settings, context);
        return {
          ...connection,
          async dispatch() {
            throw new TransportUnavailableError(`Connection to broker ${address} refused.`);
          },
        };
      },
    };
    const web = bus.web({ transport: down });
    const app = await quoteServer(web, {});
    let logged: unknown;
    app.addHook('onError', async (_request, _reply, error) => {
      logged = error;
    });
    const response = await app.inject({ method: 'POST', url: '/quote', payload: quote });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toMatchObject({
      code: 'TIDINGS_TRANSPORT_UNAVAILABLE',
      message: 'The message broker is unavailable. Try again later.',
    });
    expect(response.body).not.toContain('kafka-3');
    expect(logged).toBeInstanceOf(TransportUnavailableError);
    expect((logged as { cause: Error }).cause.message).toContain(address);
  });
});
