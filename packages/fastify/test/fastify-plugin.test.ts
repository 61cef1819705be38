import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ConfigurationError,
  createEndpoint,
  createInMemoryPersistence,
  createSendOnlyEndpoint,
  type Endpoint,
  type InMemorySession,
  RequestAbortedError,
  silentLogger,
  storageSession,
} from '@tidings/core';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tidingsPlugin } from '../src/index.ts';
import {
  type Bus,
  Check,
  eventually,
  Outcome,
  Quote,
  Quoted,
  startBus,
  Unrouted,
} from './fixtures.ts';

let bus: Bus;
const apps: FastifyInstance[] = [];

beforeEach(async () => {
  bus = await startBus();
});
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  await bus.stop();
});

/** A server with the plugin and a few routes that request through `endpoint`. */
async function webServer(
  endpoint: Endpoint,
  timeoutMs?: number,
  drainTimeoutMs?: number,
): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  await app.register(tidingsPlugin, {
    endpoint,
    ...(timeoutMs ? { timeoutMs } : {}),
    ...(drainTimeoutMs ? { drainTimeoutMs } : {}),
  });
  app.post<{ Body: { sku: string; amount: number; silent?: boolean; slowMs?: number } }>(
    '/quote',
    async (request) => request.awaitReply(Quote, request.body, { expect: Quoted }),
  );
  app.post<{ Body: { sku: string; amount: number; silent?: boolean } }>(
    '/quote-quick',
    { config: { tidings: { timeoutMs: 100 } } },
    async (request) => request.awaitReply(Quote, request.body, { expect: Quoted }),
  );
  app.get<{ Params: { id: string } }>('/check/:id', async (request) => {
    // The schema coerces the string id; a non-number fails validation (400).
    const code = await request.awaitReply(
      Check,
      { id: request.params.id as unknown as number },
      { expect: 'code' },
    );
    return { outcome: Outcome[code] };
  });
  app.get('/unrouted', async (request) => request.awaitReply(Unrouted, { id: 1 }));
  return app;
}

describe('tidingsPlugin', () => {
  it('starts the endpoint before the server is ready, exposes it, and stops it on close', async () => {
    const web = bus.web();
    const app = await webServer(web);
    expect(web.state).toBe('created');
    await app.ready();
    expect(web.state).toBe('started');
    expect(app.tidings).toBe(web);
    await app.close();
    expect(web.state).toBe('stopped');
  });

  it('answers with the reply message and with a return code', async () => {
    const app = await webServer(bus.web());
    const quoted = await app.inject({
      method: 'POST',
      url: '/quote',
      payload: { sku: 'a', amount: 21 },
    });
    expect(quoted.statusCode).toBe(200);
    expect(quoted.json()).toEqual({ sku: 'a', price: 42 });
    expect((await app.inject('/check/7')).json()).toEqual({ outcome: 'Ok' });
    expect((await app.inject('/check/8')).json()).toEqual({ outcome: 'Failed' });
  });

  it("answers 504 after the route's timeout and leaves no pending request", async () => {
    const web = bus.web();
    // The plugin's timeout is a minute: only the route's 100 ms can end this request.
    const app = await webServer(web, 60_000);
    const response = await app.inject({
      method: 'POST',
      url: '/quote-quick',
      payload: { sku: 'a', amount: 1, silent: true },
    });
    expect(response.statusCode).toBe(504);
    expect(response.json()).toMatchObject({ code: 'TIDINGS_REQUEST_TIMEOUT' });
    expect(web.stats.pendingRequests).toBe(0);
  });

  it('answers 400 when the payload fails the message schema, and sends nothing', async () => {
    const app = await webServer(bus.web());
    const handledBefore = bus.backend.stats.handled;
    const response = await app.inject('/check/not-a-number');
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ code: 'TIDINGS_VALIDATION' });
    expect(response.json().message).toMatch(/test\.Check.*failed validation/);
    expect(bus.backend.stats.handled).toBe(handledBefore);
  });

  it('answers 500 with a clear message for a message type without a route', async () => {
    const app = await webServer(bus.web());
    const response = await app.inject('/unrouted');
    expect(response.statusCode).toBe(500);
    expect(response.json()).toMatchObject({ code: 'TIDINGS_NO_ROUTE' });
    expect(response.json().message).toMatch(/No route for message type 'test\.Unrouted'/);
  });

  it('answers 500 with a clear message when the endpoint is send-only', async () => {
    const sendOnly = createSendOnlyEndpoint({
      name: 'WebSendOnly',
      transport: bus.transport,
      logger: silentLogger,
      routes: { [Quote.name]: 'Backend' },
    });
    const app = await webServer(sendOnly);
    const response = await app.inject({
      method: 'POST',
      url: '/quote',
      payload: { sku: 'a', amount: 1 },
    });
    expect(response.statusCode).toBe(500);
    expect(response.json()).toMatchObject({ code: 'TIDINGS_SEND_ONLY' });
    expect(response.json().message).toMatch(/is send-only/);
  });

  it('aborts the pending request the moment the HTTP client disconnects', async () => {
    const web = bus.web();
    const app = await webServer(web, 60_000);
    let aborted: unknown;
    app.addHook('onError', async (_request, _reply, error) => {
      aborted = error;
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const client = httpRequest({
      port,
      host: '127.0.0.1',
      method: 'POST',
      path: '/quote',
      headers: { 'content-type': 'application/json' },
    });
    client.on('error', () => {});
    client.end(JSON.stringify({ sku: 'a', amount: 1, silent: true }));
    await eventually(() => web.stats.pendingRequests === 1);
    client.destroy();
    // The timeout is a minute away: only the disconnect can empty the registry now.
    await eventually(() => web.stats.pendingRequests === 0);
    await eventually(() => aborted !== undefined);
    expect(aborted).toBeInstanceOf(RequestAbortedError);
    expect((aborted as { statusCode: number }).statusCode).toBe(499);
  });

  it('a durable request still has its effect after the HTTP client gave up', async () => {
    const persistence = createInMemoryPersistence();
    const web = bus.web({ persistence });
    const priced: string[] = [];
    const afterQuote = web.continuation('after-quote', {
      reply: Quoted,
      onReply: async (quoted, state: { order: string }, ctx) => {
        storageSession<InMemorySession>(ctx).set(`price:${state.order}`, quoted.price);
        priced.push(state.order);
      },
    });
    const app = await webServer(web, 60_000);
    app.post('/quote-durable', async (request) =>
      request.awaitReply(
        Quote,
        { sku: 'a', amount: 4, slowMs: 200 },
        { continueWith: afterQuote, state: { order: 'o-1' } },
      ),
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const client = httpRequest({ port, host: '127.0.0.1', method: 'POST', path: '/quote-durable' });
    client.on('error', () => {});
    client.end();
    await eventually(() => web.stats.awaitedDurableRequests === 1);
    client.destroy();
    await eventually(() => web.stats.awaitedDurableRequests === 0);
    // The wait ended with the client; the continuation runs all the same when the reply comes.
    await eventually(() => priced.length === 1);
    expect(persistence.data.get('price:o-1')).toBe(8);
  });

  it("aborts the pending request when the caller's own signal aborts, with its reason", async () => {
    const web = bus.web();
    const app = await webServer(web, 60_000);
    const controller = new AbortController();
    let aborted: unknown;
    app.post('/quote-with-signal', async (request) =>
      request
        .awaitReply(Quote, { sku: 'a', amount: 1, silent: true }, { signal: controller.signal })
        .catch((error: unknown) => {
          aborted = error;
          return { aborted: true };
        }),
    );
    const pending = app.inject({ method: 'POST', url: '/quote-with-signal' });
    await eventually(() => web.stats.pendingRequests === 1);
    controller.abort('user gave up');
    expect((await pending).json()).toEqual({ aborted: true });
    expect(aborted).toBeInstanceOf(RequestAbortedError);
    expect((aborted as Error).cause).toBe('user gave up');
    expect(web.stats.pendingRequests).toBe(0);
  });

  it('on close, lets requests awaiting a reply get it before the endpoint stops', async () => {
    const web = bus.web();
    const app = await webServer(web);
    await app.ready();
    const pending = app.inject({
      method: 'POST',
      url: '/quote',
      payload: { sku: 'late', amount: 5, slowMs: 300 },
    });
    await eventually(() => web.stats.pendingRequests === 1);
    await app.close();
    const response = await pending;
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ sku: 'late', price: 10 });
    expect(web.state).toBe('stopped');
  });

  it('a drainTimeoutMs of 2^31 ms or more still waits for the reply on close', async () => {
    const web = bus.web();
    // Node.js fires a plain timer this long after 1 ms.
    const app = await webServer(web, undefined, 2 ** 31);
    await app.ready();
    const pending = app.inject({
      method: 'POST',
      url: '/quote',
      payload: { sku: 'late', amount: 5, slowMs: 300 },
    });
    await eventually(() => web.stats.pendingRequests === 1);
    await app.close();
    const response = await pending;
    expect(response.statusCode).toBe(200);
    expect(web.state).toBe('stopped');
  });

  it('leaves the endpoint alone when manageLifecycle is false', async () => {
    const web = bus.web();
    await web.start();
    const app = Fastify();
    apps.push(app);
    await app.register(tidingsPlugin, { endpoint: web, manageLifecycle: false });
    await app.ready();
    await app.close();
    expect(web.state).toBe('started');
  });

  it.each([0, -1, 1.5, Number.NaN])(
    'refuses a route whose config.tidings.timeoutMs is %s when the route is added',
    async (timeoutMs) => {
      const app = Fastify();
      apps.push(app);
      await app.register(tidingsPlugin, { endpoint: bus.web() });
      expect(() =>
        app.get('/bad', { config: { tidings: { timeoutMs } } }, async () => 'never'),
      ).toThrow(ConfigurationError);
      // Nested in a plugin, the same error fails the registration.
      app.register(async (child) => {
        child.get('/bad-nested', { config: { tidings: { timeoutMs } } }, async () => 'never');
      });
      await expect(app.ready()).rejects.toThrow(
        /config\.tidings\.timeoutMs must be a positive whole number/,
      );
    },
  );

  it('refuses to register without an endpoint', async () => {
    const app = Fastify();
    apps.push(app);
    await expect(
      app.register(tidingsPlugin, {} as unknown as { endpoint: Endpoint }),
    ).rejects.toThrow(/needs an endpoint/);
  });

  it('keeps its endpoint per server: two servers, two endpoints', async () => {
    const first = await webServer(bus.web());
    const second = await webServer(
      createEndpoint({
        name: 'Web2',
        transport: bus.transport,
        logger: silentLogger,
        routes: { [Check.name]: 'Backend' },
      }),
    );
    await first.ready();
    await second.ready();
    expect(first.tidings).not.toBe(second.tidings);
    expect((await second.inject('/check/3')).json()).toEqual({ outcome: 'Ok' });
  });
});
