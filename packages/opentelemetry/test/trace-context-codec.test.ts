import { createTraceState, propagation, ROOT_CONTEXT, type Span, trace } from '@opentelemetry/api';
import { silentLogger } from '@tidings/core';
import { describe, expect, it } from 'vitest';
import { headerGetter, headerSetter } from '../src/header-carrier.ts';
import { propagatorIsW3c, TraceContextCodec } from '../src/w3c-trace-context.ts';
import { registerTestSdk } from './sdk.ts';

registerTestSdk();
const tracer = trace.getTracer('codec-test');
const valid = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

/** What the registered propagator itself reads from the headers. */
function viaApi(headers: Record<string, string>) {
  const extracted = propagation.extract(ROOT_CONTEXT, headers, headerGetter);
  return {
    span: trace.getSpanContext(extracted),
    baggage: propagation.getBaggage(extracted)?.getAllEntries(),
  };
}

describe('trace context in headers, written and read directly', () => {
  it('is used with the W3C propagators the SDK registers', () => {
    expect(propagatorIsW3c()).toBe(true);
  });

  it.each([
    ['a valid traceparent', { traceparent: valid }],
    ['unsampled', { traceparent: valid.replace(/01$/, '00') }],
    ['other flags', { traceparent: valid.replace(/01$/, '03') }],
    ['upper-case hex', { traceparent: valid.toUpperCase() }],
    ['an all-zero trace id', { traceparent: `00-${'0'.repeat(32)}-b7ad6b7169203331-01` }],
    [
      'an all-zero span id',
      { traceparent: `00-0af7651916cd43dd8448eb211c80319c-${'0'.repeat(16)}-01` },
    ],
    ['version ff', { traceparent: valid.replace(/^00/, 'ff') }],
    ['a later version with more fields', { traceparent: `cc${valid.slice(2)}-what-comes-next` }],
    ['version 00 with more fields', { traceparent: `${valid}-extra` }],
    ['surrounding spaces', { traceparent: ` ${valid} ` }],
    ['garbage', { traceparent: '00-not-a-trace-context-zz' }],
    ['a tracestate', { traceparent: valid, tracestate: 'vendor=abc,other=1' }],
    ['baggage', { traceparent: valid, baggage: 'tenant=acme' }],
    ['baggage only', { baggage: 'tenant=acme' }],
    ['nothing', {}],
  ])('reads %s as the propagator does', (_name, headers: Record<string, string>) => {
    const codec = new TraceContextCodec(true, silentLogger);
    const extracted = codec.extract(headers, 'message-1');
    expect({
      span: trace.getSpanContext(extracted),
      baggage: propagation.getBaggage(extracted)?.getAllEntries(),
    }).toEqual(viaApi(headers));
  });

  const written = (parent: typeof ROOT_CONTEXT, span: Span, direct: boolean) => {
    const headers: Record<string, string> = {};
    if (direct) new TraceContextCodec(true, silentLogger).inject(headers, parent, span);
    else propagation.inject(trace.setSpan(parent, span), headers, headerSetter);
    return headers;
  };

  it.each([
    ['a new trace', () => ROOT_CONTEXT],
    [
      'a remote parent with a tracestate',
      () =>
        trace.setSpanContext(ROOT_CONTEXT, {
          traceId: '0af7651916cd43dd8448eb211c80319c',
          spanId: 'b7ad6b7169203331',
          traceFlags: 1,
          isRemote: true,
          traceState: createTraceState('vendor=abc'),
        }),
    ],
    [
      'an unsampled parent',
      () =>
        trace.setSpanContext(ROOT_CONTEXT, {
          traceId: '0af7651916cd43dd8448eb211c80319c',
          spanId: 'b7ad6b7169203331',
          traceFlags: 0,
          isRemote: true,
        }),
    ],
    [
      'baggage',
      () => propagation.setBaggage(ROOT_CONTEXT, propagation.createBaggage({ k: { value: 'v' } })),
    ],
    [
      'suppressed tracing',
      () =>
        ROOT_CONTEXT.setValue(Symbol.for('OpenTelemetry SDK Context Key SUPPRESS_TRACING'), true),
    ],
  ])('writes for %s what the propagator writes', (_name, makeParent) => {
    const parent = makeParent();
    const span = tracer.startSpan('send q', {}, parent);
    expect(written(parent, span, true)).toEqual(written(parent, span, false));
    span.end();
  });

  it('is not used with another propagator', () => {
    propagation.disable();
    try {
      propagation.setGlobalPropagator({
        inject: (ctx, carrier, setter) => {
          const spanContext = trace.getSpanContext(ctx);
          if (spanContext !== undefined) setter.set(carrier, 'x-trace', spanContext.traceId);
        },
        extract: (ctx) => ctx,
        fields: () => ['x-trace'],
      });
      expect(propagatorIsW3c()).toBe(false);
    } finally {
      propagation.disable();
    }
  });
});
