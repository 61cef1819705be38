import type { AddressInfo } from 'node:net';
import type { Endpoint } from '@tidings/core';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ServerClosingError, tidingsPlugin } from '../src/index.ts';
import { type Bus, eventually, Quote, Quoted, startBus } from './fixtures.ts';

let bus: Bus;
const apps: FastifyInstance[] = [];

beforeEach(async () => {
  bus = await startBus();
});
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
  await bus.stop();
});

type QuoteBody = { sku: string; amount: number; silent?: boolean; slowMs?: number };

/** Adds the plugin for `endpoint` and a `POST <prefix>/quote` route to `app` (or a context of it). */
async function withQuoteRoute(
  app: FastifyInstance,
  endpoint: Endpoint,
  options: { timeoutMs?: number; drainTimeoutMs?: number } = {},
  prefix = '',
): Promise<void> {
  await app.register(tidingsPlugin, { endpoint, ...options });
  app.post<{ Body: QuoteBody }>(`${prefix}/quote`, async (request) =>
    request.awaitReply(Quote, request.body, { expect: Quoted }),
  );
}

describe('tidingsPlugin on close', () => {
  it('answers requests still waiting at drainTimeoutMs with 503, so close does not wait out their timeout', async () => {
    const web = bus.web();
    const app = Fastify();
    apps.push(app);
    // The timeout ends the request in a few seconds; the drain must end it long before that.
    await withQuoteRoute(app, web, { timeoutMs: 5000, drainTimeoutMs: 20 });
    let closing: unknown;
    const events: string[] = [];
    app.addHook('onError', async (_request, _reply, error) => {
      closing = error;
    });
    app.addHook('onResponse', async () => {
      events.push('response');
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const answered = fetch(`http://127.0.0.1:${port}/quote`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sku: 'never', amount: 1, silent: true }),
    }).then(async (response) => ({
      status: response.status,
      connection: response.headers.get('connection'),
      body: (await response.json()) as { code: string; message: string },
    }));
    await eventually(() => web.stats.pendingRequests === 1);
    await app.close();
    events.push('closed');
    const { status, connection, body } = await answered;
    // 504 would mean close waited for the request's own timeout.
    expect(status).toBe(503);
    expect(body).toMatchObject({ code: 'TIDINGS_ENDPOINT_STOPPED' });
    expect(body.message).toMatch(/server closed before the reply to 'test\.Quote' arrived/);
    expect(closing).toBeInstanceOf(ServerClosingError);
    // The server answered before close resolved, and told the keep-alive client to hang up.
    expect(events).toEqual(['response', 'closed']);
    expect(connection).toBe('close');
    expect(web.stats.pendingRequests).toBe(0);
    expect(web.state).toBe('stopped');
  });

  // Whichever context closes first must not stop the endpoint under the other's pending request.
  it.each(['/a', '/b'])(
    'one endpoint in two contexts stops only once both drained (request in %s)',
    async (prefix) => {
      const web = bus.web();
      const app = Fastify();
      apps.push(app);
      await app.register(async (context) => withQuoteRoute(context, web, {}, '/a'));
      await app.register(async (context) => withQuoteRoute(context, web, {}, '/b'));
      await app.ready();
      expect(web.state).toBe('started');
      const pending = app.inject({
        method: 'POST',
        url: `${prefix}/quote`,
        payload: { sku: prefix, amount: 1, slowMs: 100 },
      });
      await eventually(() => web.stats.pendingRequests === 1);
      await app.close();
      const response = await pending;
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ sku: prefix, price: 2 });
      expect(web.state).toBe('stopped');
    },
  );

  it('refuses at once a request begun after the drain deadline, without sending it', async () => {
    const web = bus.web();
    const app = Fastify();
    apps.push(app);
    await withQuoteRoute(app, web, { drainTimeoutMs: 20, timeoutMs: 60_000 });
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    // A route busy with something else while the server closes, then asking the bus.
    app.post('/late', async (request) => {
      await gate;
      return request.awaitReply(Quote, { sku: 'late', amount: 1 }, { expect: Quoted });
    });
    await app.ready();
    const late = app.inject({ method: 'POST', url: '/late' });
    const waiting = app.inject({
      method: 'POST',
      url: '/quote',
      payload: { sku: 'x', amount: 1, silent: true },
    });
    await eventually(() => web.stats.pendingRequests === 1);
    await eventually(() => bus.backend.stats.handled === 1);
    await app.close();
    expect((await waiting).statusCode).toBe(503);
    open();
    const response = await late;
    expect(response.statusCode).toBe(503);
    expect(response.json().message).toMatch(/server closed before the reply to 'test\.Quote'/);
    expect(bus.backend.stats.handled).toBe(1);
  });
});
