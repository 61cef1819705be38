import { createInMemoryTransport, type Transport } from '@tidings/core';
import { describeTracing } from './describe-tracing.ts';
import { registerTestSdk } from './sdk.ts';

const sdk = registerTestSdk();
// One transport per test: every endpoint of a test must reach the same queues.
const transports = new Map<string, Transport>();

describeTracing(sdk, {
  name: 'in-memory',
  system: 'tidings.in-memory',
  makeTransport: (scope) => {
    let transport = transports.get(scope.id);
    if (transport === undefined) {
      transport = createInMemoryTransport();
      transports.set(scope.id, transport);
    }
    return transport;
  },
  cleanup: async (scope) => {
    transports.delete(scope.id);
  },
});
