export { Attr, messagingSystem } from './attributes.js';
export { createOpenTelemetry } from './create-open-telemetry.js';
export { INSTRUMENTATION_NAME, type OpenTelemetryOptions } from './options.js';
export { traceCorrelatedLogger } from './trace-logger.js';
