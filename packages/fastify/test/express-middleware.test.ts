import { request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Endpoint, TransportUnavailableError } from '@tidings/core';
import express, { type Request } from 'express';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type TidingsRequestFields, tidingsErrorHandler, tidingsMiddleware } from '../src/index.ts';
import {
  type Bus,
  Check,
  eventually,
  Outcome,
  Quote,
  Quoted,
  readQueue,
  startBus,
} from './fixtures.ts';

let bus: Bus;
let web: Endpoint;
let server: Server;
let base: string;

beforeEach(async () => {
  bus = await startBus();
  web = bus.web();
  await web.start();
  const app = express();
  app.use(express.json());
  app.use(tidingsMiddleware({ endpoint: web, timeoutMs: 60_000 }));
  const tidings = (req: Request) => req as Request & TidingsRequestFields;
  app.post('/quote', async (req, res) => {
    res.json(await tidings(req).awaitReply(Quote, req.body, { expect: Quoted, timeoutMs: 100 }));
  });
  app.post('/quote-slow', async (req, res) => {
    res.json(await tidings(req).awaitReply(Quote, req.body, { expect: Quoted }));
  });
  app.get('/check/:id', async (req, res) => {
    const id = req.params.id as unknown as number;
    const code = await tidings(req).awaitReply(Check, { id }, { expect: 'code' });
    res.json({ outcome: Outcome[code] });
  });
  app.use(tidingsErrorHandler());
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await bus.stop();
});

const post = (path: string, body: unknown) =>
  fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

describe('tidingsMiddleware with Express 5', () => {
  it('answers with the reply', async () => {
    const response = await post('/quote', { sku: 'x', amount: 4 });
    expect(await response.json()).toEqual({ sku: 'x', price: 8 });
    expect(await (await fetch(`${base}/check/2`)).json()).toEqual({ outcome: 'Failed' });
  });

  it('maps errors through tidingsErrorHandler: 504 on timeout, 400 on a bad payload', async () => {
    const timedOut = await post('/quote', { sku: 'x', amount: 4, silent: true });
    expect(timedOut.status).toBe(504);
    expect(await timedOut.json()).toMatchObject({ code: 'TIDINGS_REQUEST_TIMEOUT' });
    const invalid = await fetch(`${base}/check/minus-one`);
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ code: 'TIDINGS_VALIDATION' });
    expect(web.stats.pendingRequests).toBe(0);
  });

  it('answers 400 at once for a body with a __proto__ key, and sends nothing', async () => {
    const errors = await readQueue(bus.transport, 'error');
    const handledBefore = bus.backend.stats.handled;
    // express.json() keeps '__proto__' as an own key; the route passes the body on as it is.
    const response = await fetch(`${base}/quote`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"sku":"x","amount":1,"__proto__":{"admin":true}}',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      code: 'TIDINGS_VALIDATION',
      message: expect.stringMatching(/test\.Quote' failed validation: __proto__/),
    });
    // A clean request after it is handled; the refused one never reached the backend.
    expect((await post('/quote', { sku: 'y', amount: 1 })).status).toBe(200);
    expect(bus.backend.stats.handled).toBe(handledBefore + 1);
    expect(errors.messages).toEqual([]);
    await errors.close();
  });

  it('aborts the pending request when the client disconnects', async () => {
    const { port } = server.address() as AddressInfo;
    const client = httpRequest({
      port,
      host: '127.0.0.1',
      method: 'POST',
      path: '/quote-slow',
      headers: { 'content-type': 'application/json' },
    });
    client.on('error', () => {});
    client.end(JSON.stringify({ sku: 'x', amount: 1, silent: true }));
    await eventually(() => web.stats.pendingRequests === 1);
    client.destroy();
    // The timeout is a minute away: only the disconnect can empty the registry.
    await eventually(() => web.stats.pendingRequests === 0);
  });
});

describe('tidingsMiddleware options', () => {
  it('a per-call { timeoutMs: undefined } keeps the middleware timeout', async () => {
    // The endpoint's own default would answer "within 60000 ms" much later.
    const slowDefault = bus.web({ name: 'WebSlowDefault', requestTimeoutMs: 60_000 });
    await slowDefault.start();
    const app = express();
    app.use(express.json());
    app.use(tidingsMiddleware({ endpoint: slowDefault, timeoutMs: 50 }));
    app.post('/quote', async (req, res) => {
      const { awaitReply } = req as Request & TidingsRequestFields;
      const timeoutMs = undefined as unknown as number; // e.g. an unset config value, from JS
      res.json(await awaitReply(Quote, req.body, { expect: Quoted, timeoutMs }));
    });
    app.use(tidingsErrorHandler());
    const own = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => own.once('listening', resolve));
    try {
      const response = await fetch(
        `http://127.0.0.1:${(own.address() as AddressInfo).port}/quote`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ sku: 'x', amount: 1, silent: true }),
        },
      );
      expect(response.status).toBe(504);
      expect(((await response.json()) as { message: string }).message).toMatch(/within 50 ms/);
    } finally {
      own.closeAllConnections();
      await new Promise((resolve) => own.close(resolve));
    }
  });

  it('tidingsErrorHandler answers a broker outage with a generic body and logs the error', async () => {
    const logged: unknown[] = [];
    const app = express();
    app.get('/down', () => {
      throw new TransportUnavailableError('Connection to broker 10.0.0.7:5672 refused.');
    });
    app.use(tidingsErrorHandler({ log: (error) => logged.push(error) }));
    const own = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => own.once('listening', resolve));
    try {
      const response = await fetch(`http://127.0.0.1:${(own.address() as AddressInfo).port}/down`);
      expect(response.status).toBe(503);
      const text = await response.text();
      expect(JSON.parse(text)).toMatchObject({ code: 'TIDINGS_TRANSPORT_UNAVAILABLE' });
      expect(text).not.toContain('10.0.0.7');
      expect(logged).toEqual([expect.any(TransportUnavailableError)]);
    } finally {
      own.closeAllConnections();
      await new Promise((resolve) => own.close(resolve));
    }
  });
});
