export { runUntilSignal } from './process.js';
export { type TransportName, transportFromEnv, transportName } from './transport-from-env.js';
