import { type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import {
  type Continuation,
  createEndpoint,
  createInMemoryPersistence,
  createInMemoryTransport,
  defineMessage,
  type Endpoint,
  type EndpointOptions,
  RequestAbortedError,
  silentLogger,
} from '@tidings/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createOpenTelemetry } from '../src/index.ts';
import { parentOf, registerTestSdk } from './sdk.ts';

const sdk = registerTestSdk();

const CheckCredit = defineMessage<{ amount: number }>('otel.durable.CheckCredit');
const CreditChecked = defineMessage<{ ok: boolean }>('otel.durable.CreditChecked');

const appTracer = () => trace.getTracer('app');
const named = (name: string) => (span: ReadableSpan) => span.name === name;
const wait = { timeout: 10_000, interval: 10 };

/** `a` ended no earlier than `b` (hrtime pairs). */

describe('OpenTelemetry: durable requests (in-memory transport and persistence)', () => {
  const instrumentation = createOpenTelemetry();
  let endpoints: Endpoint[] = [];
  let transport = createInMemoryTransport();
  beforeEach(() => {
    sdk.exporter.reset();
    transport = createInMemoryTransport();
  });
  afterEach(async () => {
    await Promise.all(endpoints.map((endpoint) => endpoint.stop()));
    endpoints = [];
  });

  async function started(
    options: Omit<EndpointOptions, 'transport'>,
    setup?: (e: Endpoint) => void,
  ) {
    const endpoint = createEndpoint({
      transport,
      logger: silentLogger,
      instrumentation,
      ...options,
    });
    setup?.(endpoint);
    endpoints.push(endpoint);
    await endpoint.start();
    return endpoint;
  }

  it('the await is a request span under the caller’s span, ended once the continuation committed; the request is sent within it', async () => {
    const server = await started({ name: 'CreditSvc' }, (endpoint) =>
      endpoint.handle(CheckCredit, (check, ctx) =>
        ctx.reply(CreditChecked, { ok: check.amount < 10 }),
      ),
    );
    let continuationSpan: Span | undefined;
    let afterCheck!: Continuation<typeof CreditChecked, object>;
    const sales = await started(
      {
        name: 'Sales',
        instanceId: 'a',
        persistence: createInMemoryPersistence(),
        routes: { [CheckCredit.name]: server.name },
      },
      (endpoint) => {
        afterCheck = endpoint.continuation('after-check', {
          reply: CreditChecked,
          onReply: async () => {
            appTracer().startActiveSpan('continuation.write', (span) => {
              continuationSpan = span;
              span.end();
            });
          },
        });
      },
    );

    let http: Span | undefined;
    const reply = await appTracer().startActiveSpan('http.request', async (span) => {
      http = span;
      try {
        return await sales.request(
          CheckCredit,
          { amount: 5 },
          { continueWith: afterCheck, state: {}, messageId: 'durable-1', timeoutMs: 60_000 },
        );
      } finally {
        span.end();
      }
    });
    expect(reply).toEqual({ ok: true });
    expect(continuationSpan).toBeDefined();

    const requestName = `request ${server.name}`;
    await vi.waitFor(() => expect(sdk.spans().some(named(requestName))).toBe(true), wait);
    const spans = sdk.spans();
    const traceId = http?.spanContext().traceId;
    const requests = spans.filter(named(requestName));
    expect(requests).toHaveLength(1);
    const request = requests[0] as ReadableSpan;
    expect(request.spanContext().traceId).toBe(traceId);
    expect(request.kind).toBe(SpanKind.CLIENT);
    expect(parentOf(request)).toBe(http?.spanContext().spanId);
    expect(request.attributes).toEqual({
      'messaging.system': 'tidings.in-memory',
      'messaging.operation.name': 'request',
      'messaging.destination.name': server.name,
      'messaging.message.id': 'durable-1',
      'tidings.message.type': CheckCredit.name,
    });
    expect(request.status.code).not.toBe(SpanStatusCode.ERROR);

    // The request message and its deadline leave within the request span.
    const sends = spans.filter((s) => parentOf(s) === request.spanContext().spanId);
    expect(sends.map((s) => s.name).sort()).toEqual([`send ${server.name}`, `send ${sales.name}`]);
    const requestSend = sends.find(named(`send ${server.name}`)) as ReadableSpan;
    expect(requestSend.attributes['messaging.message.id']).toBe('durable-1');

    // The continuation ran in the reply's process span, in the same trace, before the await ended.
    const written = spans.find(named('continuation.write')) as ReadableSpan;
    expect(written.spanContext().traceId).toBe(traceId);
    const replyProcess = spans.find((s) => s.spanContext().spanId === parentOf(written));
    expect(replyProcess?.name).toBe(`process ${sales.name}`);
    // The exporter holds spans in the order they ended (a simple processor exports on end); end
    // times would not do, since each span anchors its clock to the wall clock when it starts.
    expect(spans.indexOf(request)).toBeGreaterThan(spans.indexOf(written));

    const toServer = { 'messaging.destination.name': server.name };
    expect(await sdk.metricValue('tidings.request.duration', toServer)).toBe(1);
    expect(await sdk.metricValue('tidings.requests.pending', toServer)).toBe(0);
  });

  it('an await that ends in an error ends its span with the error’s type', async () => {
    // A server that never answers: the wait ends by its signal.
    const server = await started({ name: 'Silent', faultReplies: 'off' }, (endpoint) =>
      endpoint.handle(CheckCredit, () => {}),
    );
    let afterCheck!: Continuation<typeof CreditChecked, object>;
    const sales = await started(
      {
        name: 'Waiting',
        persistence: createInMemoryPersistence(),
        routes: { [CheckCredit.name]: server.name },
      },
      (endpoint) => {
        afterCheck = endpoint.continuation('after-check', {
          reply: CreditChecked,
          onReply: () => {},
        });
      },
    );
    const controller = new AbortController();
    const request = sales.request(
      CheckCredit,
      { amount: 5 },
      { continueWith: afterCheck, state: {}, signal: controller.signal, timeoutMs: 60_000 },
    );
    await vi.waitFor(() => expect(server.stats.handled).toBe(1), wait);
    controller.abort();
    await expect(request).rejects.toBeInstanceOf(RequestAbortedError);

    const [span] = sdk.spans().filter(named(`request ${server.name}`));
    expect(span?.status.code).toBe(SpanStatusCode.ERROR);
    expect(span?.attributes['error.type']).toBe('TIDINGS_REQUEST_ABORTED');
    expect(
      await sdk.metricValue('tidings.request.duration', {
        'messaging.destination.name': server.name,
        'error.type': 'TIDINGS_REQUEST_ABORTED',
      }),
    ).toBe(1);
  });
});
