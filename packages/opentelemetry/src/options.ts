import type { MeterProvider, TracerProvider } from '@opentelemetry/api';

export interface OpenTelemetryOptions {
  /**
   * Where spans go.
   * @default the global tracer provider (`trace.getTracerProvider()`): the one an SDK registered,
   * else a no-op one
   */
  readonly tracerProvider?: TracerProvider;
  /**
   * Where metrics go.
   * @default the global meter provider (`metrics.getMeterProvider()`)
   */
  readonly meterProvider?: MeterProvider;
  /**
   * Adds `traceId` and `spanId` to the endpoint's log records while a span is active.
   * @default true
   */
  readonly logCorrelation?: boolean;
}

/** The instrumentation scope name of tracers and meters. */
export const INSTRUMENTATION_NAME = '@tidings/opentelemetry';
