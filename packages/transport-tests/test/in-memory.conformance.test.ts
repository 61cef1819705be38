import {
  createInMemoryTransport,
  type InMemoryTransport,
  inMemoryTransportDefaults,
} from '@tidings/core';
import { describeTransport } from '../src/index.ts';

// One shared transport per test: in one process every endpoint reaches the same queues.
const perScope = new Map<string, InMemoryTransport>();

describeTransport({
  name: 'in-memory',
  makeTransport: (scope) => {
    let transport = perScope.get(scope.id);
    if (transport === undefined) {
      transport = createInMemoryTransport({ maxMessageSizeBytes: 64 * 1024 });
      perScope.set(scope.id, transport);
    }
    return transport;
  },
  capabilities: {
    delayedDelivery: true,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: 64 * 1024,
    deliveryCount: true,
    durable: false,
  },
  cleanup: async (scope) => {
    perScope.delete(scope.id);
  },
});

void inMemoryTransportDefaults;
