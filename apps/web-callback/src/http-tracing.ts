import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  trace,
} from '@opentelemetry/api';
import type { FastifyInstance } from 'fastify';

const spans = new WeakMap<object, { readonly span: Span; readonly active: Context }>();

/**
 * A SERVER span per HTTP request, active while its handler runs, so the bus request it makes (and
 * everything down to the backend's handler and back) joins the HTTP request's trace. It continues
 * a caller's `traceparent` header. An application would use OpenTelemetry's HTTP or Fastify
 * instrumentation instead; this keeps the sample free of module patching.
 */
export function traceHttpRequests(app: FastifyInstance): void {
  const tracer = trace.getTracer('example-web-callback');
  app.addHook('onRequest', (request, _reply, done) => {
    const parent = propagation.extract(ROOT_CONTEXT, request.headers);
    const route = request.routeOptions.url ?? request.url;
    const span = tracer.startSpan(
      `${request.method} ${route}`,
      {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': request.method, 'http.route': route },
      },
      parent,
    );
    spans.set(request, { span, active: trace.setSpan(parent, span) });
    done();
  });
  // Active from here, right before the handler: body parsing runs in the socket's own context.
  app.addHook('preHandler', (request, _reply, done) => {
    const traced = spans.get(request);
    if (traced === undefined) done();
    else context.with(traced.active, done);
  });
  app.addHook('onResponse', (request, reply, done) => {
    const span = spans.get(request)?.span;
    span?.setAttribute('http.response.status_code', reply.statusCode);
    span?.end();
    done();
  });
}
