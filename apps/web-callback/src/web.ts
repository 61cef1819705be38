import { createEndpoint, type Endpoint, type Logger, type Transport } from '@tidings/core';
import { tidingsPlugin } from '@tidings/fastify';
import { runUntilSignal, tracingFromEnv, transportFromEnv } from '@tidings/sample-support';
import Fastify, { type FastifyInstance } from 'fastify';
import { traceHttpRequests } from './http-tracing.js';
import {
  DescribeOrder,
  ErrorCodes,
  OrderDescription,
  ProcessOrder,
  routes,
  webName,
} from './messages.js';
import { page } from './page.js';

/**
 * The web server's endpoint. It waits for replies in memory (callbacks), so it needs a queue of
 * its own for them: `Callbacks.Web.<instanceId>`. Keep the id stable per server instance.
 */
export function createWebEndpoint(
  transport: Transport,
  options: { readonly instanceId?: string; readonly logger?: Logger } = {},
): Endpoint {
  return createEndpoint({
    name: webName,
    instanceId: options.instanceId ?? 'web-1',
    transport,
    routes,
    ...(options.logger ? { logger: options.logger } : {}),
    // TIDINGS_TRACE=1: OpenTelemetry spans (see ../sample-support/src/tracing.ts).
    ...tracingFromEnv('web'),
  });
}

export interface WebServerOptions {
  readonly endpoint: Endpoint;
  /**
   * How long an API call waits for the backend before answering 504.
   * @default 5000
   */
  readonly timeoutMs?: number;
  /** Fastify's request log level (e.g. 'info'); off when omitted. */
  readonly logLevel?: string;
  /** A span per HTTP request, parent of the bus requests it makes (with TIDINGS_TRACE=1). */
  readonly traceRequests?: boolean;
}

const idBody = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'integer', minimum: 1 } },
  additionalProperties: false,
} as const;

/** The page, the JSON API (each call answered when the backend's reply arrives), `/ping` and `/api/stats`. */
export async function createWebServer(options: WebServerOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logLevel ? { level: options.logLevel } : false });
  if (options.traceRequests) traceHttpRequests(app);
  await app.register(tidingsPlugin, {
    endpoint: options.endpoint,
    timeoutMs: options.timeoutMs ?? 5000,
  });

  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(page));

  // Answers without the bus: shows the event loop is free while requests wait for replies.
  app.get('/ping', async () => ({ pong: true }));

  app.post<{ Body: { id: number } }>(
    '/api/process',
    { schema: { body: idBody } },
    async (request) => {
      const { id } = request.body;
      const code = await request.awaitReply(ProcessOrder, { id }, { expect: 'code' });
      return { id, code, result: ErrorCodes[code] ?? 'Unknown' };
    },
  );

  app.post<{ Body: { id: number } }>(
    '/api/describe',
    { schema: { body: idBody } },
    async (request) =>
      request.awaitReply(DescribeOrder, request.body, { expect: OrderDescription }),
  );

  // Requests awaiting a reply right now, and other endpoint counters.
  app.get('/api/stats', async () => app.tidings.stats);

  return app;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const endpoint = createWebEndpoint(await transportFromEnv('tidings-web-callback'), {
    instanceId: process.env.WEB_INSTANCE_ID ?? 'web-1',
  });
  const app = await createWebServer({
    endpoint,
    timeoutMs: Number(process.env.WEB_TIMEOUT_MS ?? 5000),
    ...(process.env.LOG_LEVEL ? { logLevel: process.env.LOG_LEVEL } : {}),
    traceRequests: 'instrumentation' in tracingFromEnv('web'),
  });
  const url = await app.listen({
    port: Number(process.env.PORT ?? 3000),
    host: process.env.HOST ?? '127.0.0.1',
  });
  console.log(`[web] listening on ${url}`);
  process.send?.({ url });
  await runUntilSignal(() => app.close());
}
