import { isSpanContextValid, trace } from '@opentelemetry/api';
import type { LogFields, Logger } from '@tidings/core';

/** The logger, with `traceId` and `spanId` added to each record written while a span is active. */
export function traceCorrelatedLogger(logger: Logger): Logger {
  const withTrace = (fields: LogFields | undefined): LogFields | undefined => {
    const span = trace.getActiveSpan();
    if (span === undefined) return fields;
    const spanContext = span.spanContext();
    if (!isSpanContextValid(spanContext)) return fields;
    return { ...fields, traceId: spanContext.traceId, spanId: spanContext.spanId };
  };
  return {
    debug: (message, fields) => logger.debug(message, withTrace(fields)),
    info: (message, fields) => logger.info(message, withTrace(fields)),
    warn: (message, fields) => logger.warn(message, withTrace(fields)),
    error: (message, fields) => logger.error(message, withTrace(fields)),
  };
}
