export { runUntilSignal } from './process.js';
export { traceDir, traceTree, tracingFromEnv } from './tracing.js';
export { type TransportName, transportFromEnv, transportName } from './transport-from-env.js';
