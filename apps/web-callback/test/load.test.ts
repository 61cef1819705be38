import type { AddressInfo } from 'node:net';
import { createInMemoryTransport, type Endpoint, silentLogger } from '@tidings/core';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createBackendEndpoint } from '../src/backend.ts';
import { createWebEndpoint, createWebServer } from '../src/web.ts';

let backend: Endpoint;
let endpoint: Endpoint;
let app: FastifyInstance;
let url: string;

beforeEach(async () => {
  const transport = createInMemoryTransport();
  // Each command takes a second of waiting in the backend, so hundreds of web requests are pending at
  // once even on a slow machine where sending all of them takes most of that second.
  backend = createBackendEndpoint(transport, {
    logger: silentLogger,
    workMs: 1_000,
    concurrency: 500,
  });
  await backend.start();
  endpoint = createWebEndpoint(transport, { logger: silentLogger });
  // A timeout far beyond the test: any request that ends early ended for another reason.
  app = await createWebServer({ endpoint, timeoutMs: 60_000 });
  await app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  await app.close();
  await backend.stop();
});

const post = (path: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });

async function waitFor(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('the web server under load (in-memory transport, one process)', () => {
  it('answers 500 concurrent requests correctly while /ping keeps answering', async () => {
    const total = 500;
    let outstanding = total;
    const pings: { status: number; pendingAtAnswer: number }[] = [];
    const pinger = (async () => {
      while (outstanding > 0) {
        const response = await fetch(`${url}/ping`);
        await response.json();
        pings.push({ status: response.status, pendingAtAnswer: endpoint.stats.pendingRequests });
      }
    })();
    const results = await Promise.all(
      Array.from({ length: total }, async (_, i) => {
        // The first half asks for a return code, the second half for a message.
        const kind = i < total / 2 ? 'process' : 'describe';
        const id = i + 1;
        try {
          const response = await post(`/api/${kind}`, { id });
          return { kind, id, status: response.status, body: await response.json() };
        } finally {
          outstanding--;
        }
      }),
    );
    await pinger;

    for (const { kind, id, status, body } of results) {
      expect(status).toBe(200);
      const even = id % 2 === 0;
      expect(body).toEqual(
        kind === 'process'
          ? { id, code: even ? 1 : 0, result: even ? 'Fail' : 'None' }
          : { id, text: `Order ${id}: ${even ? 'on hold' : 'shipped'}` },
      );
    }
    expect(pings.length).toBeGreaterThan(0);
    expect(pings.every((ping) => ping.status === 200)).toBe(true);
    // Pings were answered while many bus requests were still waiting for their replies.
    expect(pings.some((ping) => ping.pendingAtAnswer >= 50)).toBe(true);
    expect(endpoint.stats.pendingRequests).toBe(0);
  });

  it('a client that disconnects mid-request leaves no pending request behind', async () => {
    await backend.stop(); // nobody replies: only the disconnect can end the wait
    const clients = Array.from({ length: 20 }, () => new AbortController());
    const calls = clients.map((client, i) =>
      post(i % 2 ? '/api/describe' : '/api/process', { id: i + 1 }, client.signal).catch(
        (error: Error) => error.name,
      ),
    );
    await waitFor(() => endpoint.stats.pendingRequests === clients.length);
    for (const client of clients) client.abort();
    expect(await Promise.all(calls)).toEqual(clients.map(() => 'AbortError'));
    // The timeout is a minute away.
    await waitFor(() => endpoint.stats.pendingRequests === 0);
    expect(endpoint.stats.pendingRequests).toBe(0);
  });
});
