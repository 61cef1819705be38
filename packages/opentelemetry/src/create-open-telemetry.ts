import {
  isSpanContextValid,
  type Meter,
  metrics,
  ROOT_CONTEXT,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { Instrumentation } from '@tidings/core';
import { EndpointTelemetry } from './endpoint-telemetry.js';
import { createMetrics, type TidingsMetrics } from './metrics.js';
import { INSTRUMENTATION_NAME, type OpenTelemetryOptions } from './options.js';
import { traceCorrelatedLogger } from './trace-logger.js';

/** This package's version, reported as the instrumentation scope's. */
const VERSION = '0.0.0';

/**
 * True when the tracer makes real spans: the API's no-op tracer (no SDK registered) gives spans
 * with an invalid context. The probe is never ended, so no SDK exports it.
 */
function tracerIsLive(tracer: Tracer): boolean {
  return isSpanContextValid(tracer.startSpan('tidings.probe', {}, ROOT_CONTEXT).spanContext());
}

/**
 * One set of instruments per meter (an SDK hands out one meter per name): a second set would
 * report the same counts twice.
 */
const metricsByMeter = new WeakMap<Meter, TidingsMetrics | null>();

function metricsOf(meter: Meter): TidingsMetrics | undefined {
  let found = metricsByMeter.get(meter);
  if (found === undefined) {
    found = createMetrics(meter) ?? null;
    metricsByMeter.set(meter, found);
  }
  return found ?? undefined;
}

/**
 * Tracing, metrics and log correlation for an endpoint, through `@opentelemetry/api` only: pass it
 * as `createEndpoint({ ..., instrumentation: createOpenTelemetry() })`. One instance may serve
 * several endpoints. The SDK is looked up at each endpoint's start: register it before. With none
 * registered, the endpoint runs as if it had no instrumentation, at no cost.
 */
export function createOpenTelemetry(options: OpenTelemetryOptions = {}): Instrumentation {
  const instrumentation: Instrumentation = {
    instrumentEndpoint(endpoint, connection) {
      const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(
        INSTRUMENTATION_NAME,
        VERSION,
      );
      const instruments = metricsOf(
        (options.meterProvider ?? metrics.getMeterProvider()).getMeter(
          INSTRUMENTATION_NAME,
          VERSION,
        ),
      );
      const tracing = tracerIsLive(tracer);
      if (!tracing && instruments === undefined) return undefined;
      return new EndpointTelemetry(endpoint, connection, tracing ? tracer : undefined, instruments);
    },
  };
  if (options.logCorrelation !== false) {
    return { ...instrumentation, wrapLogger: traceCorrelatedLogger };
  }
  return instrumentation;
}
