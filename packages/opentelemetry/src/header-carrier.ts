import type { TextMapGetter, TextMapSetter } from '@opentelemetry/api';

type HeaderRecord = Record<string, string>;

/** Reads trace context from message headers (W3C `traceparent`, `tracestate`, `baggage`). */
export const headerGetter: TextMapGetter<Readonly<HeaderRecord>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key];
    return typeof value === 'string' ? value : undefined;
  },
};

/** Writes trace context into a fresh header record. */
export const headerSetter: TextMapSetter<HeaderRecord> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};
