import { describePersistence } from '@tidings/persistence-tests';
import type { PoolClient } from 'pg';
import { createPostgresPersistence } from '../src/index.ts';
import { testPool, testSchema } from './database.ts';

describePersistence<PoolClient>({
  name: 'postgres',
  async makePersistence() {
    const { pool } = testPool({ max: 20 });
    const database = await testSchema(pool);
    const persistence = createPostgresPersistence({ pool, schema: database.schema });
    await persistence.install();
    return {
      persistence,
      write: database.write,
      count: database.count,
      async dispose() {
        await database.drop();
        await pool.end();
      },
    };
  },
});
