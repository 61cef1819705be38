import { randomUUID } from 'node:crypto';
import pg from 'pg';

/** The test server: `DATABASE_URL`, or the one `scripts/services.sh` starts. */
export const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A pool with a name of its own, so a test can find (and terminate) its connections. */
export function testPool(options: pg.PoolConfig = {}) {
  const applicationName = `tidings-test-${randomUUID().slice(0, 8)}`;
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    application_name: applicationName,
    max: 10,
    ...options,
  });
  // A connection terminated while idle in the pool reports here; the pool replaces it.
  pool.on('error', () => {});
  return { pool, applicationName };
}

/** A schema of its own for a test file; `drop` removes it. */
export async function testSchema(pool: pg.Pool) {
  const schema = `tidings_test_${randomUUID().slice(0, 8)}`;
  await pool.query(`CREATE SCHEMA "${schema}"`);
  // `n` counts how often a key was written, where a test upserts instead of inserting.
  await pool.query(
    `CREATE TABLE "${schema}".ledger (key text PRIMARY KEY, n int NOT NULL DEFAULT 1)`,
  );
  return {
    schema,
    write: async (client: pg.ClientBase, key: string) => {
      await client.query(`INSERT INTO "${schema}".ledger (key) VALUES ($1)`, [key]);
    },
    count: async (key: string) => {
      const result = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM "${schema}".ledger WHERE key = $1`,
        [key],
      );
      return Number(result.rows[0]?.n);
    },
    drop: () => pool.query(`DROP SCHEMA "${schema}" CASCADE`),
  };
}
