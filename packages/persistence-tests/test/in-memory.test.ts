import { createInMemoryPersistence, type InMemorySession } from '@tidings/core';
import { describePersistence } from '../src/index.ts';

describePersistence<InMemorySession>({
  name: 'in-memory',
  async makePersistence() {
    const persistence = createInMemoryPersistence();
    return {
      persistence,
      async write(session, key) {
        if (session.get(key) !== undefined) throw new Error(`duplicate key ${key}`);
        session.set(key, 1);
      },
      async count(key) {
        return persistence.data.has(key) ? 1 : 0;
      },
    };
  },
});
