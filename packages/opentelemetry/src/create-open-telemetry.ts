import { metrics, trace } from '@opentelemetry/api';
import type { Instrumentation } from '@tidings/core';
import { EndpointTelemetry } from './endpoint-telemetry.js';
import { createMetrics, type TidingsMetrics } from './metrics.js';
import { INSTRUMENTATION_NAME, type OpenTelemetryOptions } from './options.js';
import { traceCorrelatedLogger } from './trace-logger.js';

/** This package's version, reported as the instrumentation scope's. */
const VERSION = '0.0.0';

/**
 * Tracing, metrics and log correlation for an endpoint, through `@opentelemetry/api` only: pass it
 * as `createEndpoint({ ..., instrumentation: createOpenTelemetry() })`. With no SDK registered it
 * does next to nothing. One instance may serve several endpoints.
 */
export function createOpenTelemetry(options: OpenTelemetryOptions = {}): Instrumentation {
  let instruments: TidingsMetrics | undefined;
  const instrumentation: Instrumentation = {
    instrumentEndpoint(endpoint, connection) {
      // Looked up at start, not at creation: an SDK registered in between is the one used.
      const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(
        INSTRUMENTATION_NAME,
        VERSION,
      );
      instruments ??= createMetrics(
        (options.meterProvider ?? metrics.getMeterProvider()).getMeter(
          INSTRUMENTATION_NAME,
          VERSION,
        ),
      );
      return new EndpointTelemetry(endpoint, connection, tracer, instruments);
    },
  };
  if (options.logCorrelation !== false) {
    return { ...instrumentation, wrapLogger: traceCorrelatedLogger };
  }
  return instrumentation;
}
