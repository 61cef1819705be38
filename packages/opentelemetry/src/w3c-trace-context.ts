import {
  type Context,
  createTraceState,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import type { Logger } from '@tidings/core';
import { headerGetter, headerSetter } from './header-carrier.js';

type HeaderRecord = Record<string, string>;

/**
 * Trace context in message headers. When the registered propagator is W3C Trace Context (with
 * W3C Baggage or not; checked once, by behaviour), the common case is written and read here
 * directly: the propagation API's generic path (a composite, a getter per field, a regex with
 * captures, a context per propagator) costs more per message than the span it carries. Anything
 * else (baggage to write or read, a `tracestate` to read, a `traceparent` not in the strict
 * version 00 form, suppressed tracing, another propagator) goes through the propagation API.
 */
export class TraceContextCodec {
  constructor(
    private readonly direct: boolean,
    private readonly logger: Logger,
  ) {}

  /**
   * The parent context for a received message's spans: from the headers (from the root:
   * whatever context the transport's callback happens to run in is not the message's), else the
   * root. A malformed `traceparent` is logged and ignored: the message starts a new trace.
   */
  extract(headers: Readonly<HeaderRecord>, messageId: string): Context {
    const traceparent = headers.traceparent;
    if (this.direct && headers.tracestate === undefined && headers.baggage === undefined) {
      if (traceparent === undefined) return ROOT_CONTEXT;
      const spanContext = parseTraceparent(traceparent);
      if (spanContext !== undefined) return trace.setSpanContext(ROOT_CONTEXT, spanContext);
    }
    const extracted = propagation.extract(ROOT_CONTEXT, headers, headerGetter);
    if (traceparent !== undefined && !hasValidSpan(extracted)) {
      this.logger.debug('Ignored a malformed traceparent header; the message starts a new trace', {
        messageId,
      });
    }
    return extracted;
  }

  /**
   * Writes `span`'s context (and the parent's baggage) into headers that carry none yet.
   * `parent` is the context the span was started in.
   */
  inject(headers: HeaderRecord, parent: Context, span: Span): void {
    if (
      this.direct &&
      propagation.getBaggage(parent) === undefined &&
      parent.getValue(suppressTracingKey) !== true
    ) {
      const spanContext = span.spanContext();
      if (!isSpanContextValid(spanContext)) return;
      headers.traceparent = formatTraceparent(spanContext);
      if (spanContext.traceState !== undefined) {
        headers.tracestate = spanContext.traceState.serialize();
      }
      return;
    }
    propagation.inject(trace.setSpan(parent, span), headers, headerSetter);
  }
}

/** `@opentelemetry/core`'s key (context keys are `Symbol.for` their description). */
const suppressTracingKey = Symbol.for('OpenTelemetry SDK Context Key SUPPRESS_TRACING');

/** Version 00, exactly: anything looser is left to the propagator, which knows the rules. */
const strictTraceparent = /^00-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/;

const zeroTraceId = '0'.repeat(32);
const zeroSpanId = '0'.repeat(16);

function parseTraceparent(text: string): SpanContext | undefined {
  if (text.length !== 55 || !strictTraceparent.test(text)) return undefined;
  const traceId = text.slice(3, 35);
  const spanId = text.slice(36, 52);
  // All-zero ids are invalid: the propagator's rules then apply (the message starts a new trace).
  if (traceId === zeroTraceId || spanId === zeroSpanId) return undefined;
  return { traceId, spanId, traceFlags: Number.parseInt(text.slice(53, 55), 16), isRemote: true };
}

function hasValidSpan(extracted: Context): boolean {
  const spanContext = trace.getSpanContext(extracted);
  return spanContext !== undefined && isSpanContextValid(spanContext);
}

function formatTraceparent({ traceId, spanId, traceFlags }: SpanContext): string {
  const flags =
    traceFlags === TraceFlags.SAMPLED
      ? '01'
      : traceFlags === TraceFlags.NONE
        ? '00'
        : `0${Number(traceFlags || TraceFlags.NONE).toString(16)}`;
  return `00-${traceId}-${spanId}-${flags}`;
}

const fieldsKnown = new Set(['traceparent', 'tracestate', 'baggage']);

/**
 * Whether the registered propagator writes and reads W3C trace context exactly as this module
 * does: it names no other field, and a probe context (with a `tracestate`) comes out as the
 * module writes it and reads back the same. Any difference, and every message takes the API's path.
 */
export function propagatorIsW3c(): boolean {
  try {
    if (!propagation.fields().every((field) => fieldsKnown.has(field))) return false;
    const probe: SpanContext = {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: TraceFlags.SAMPLED,
      traceState: createTraceState('tidings=probe'),
    };
    const written: HeaderRecord = {};
    propagation.inject(trace.setSpanContext(ROOT_CONTEXT, probe), written, headerSetter);
    const expected = formatTraceparent(probe);
    if (
      Object.keys(written).length !== 2 ||
      written.traceparent !== expected ||
      written.tracestate !== 'tidings=probe'
    ) {
      return false;
    }
    const read = trace.getSpanContext(
      propagation.extract(ROOT_CONTEXT, { traceparent: expected }, headerGetter),
    );
    return (
      read !== undefined &&
      read.traceId === probe.traceId &&
      read.spanId === probe.spanId &&
      read.traceFlags === probe.traceFlags &&
      read.isRemote === true &&
      read.traceState === undefined
    );
  } catch {
    return false;
  }
}
