import {
  createEndpoint,
  createInMemoryTransport,
  defineMessage,
  silentLogger,
} from '@tidings/core';
import { Kysely, PostgresDialect, type PostgresPoolClient } from 'kysely';
import type { PoolClient } from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPostgresPersistence, postgresSession } from '../src/index.ts';
import { testPool, testSchema } from './database.ts';

interface Database {
  ledger: { key: string; n: number };
}

/** Kysely over the handler's session: its queries run in the message's transaction. */
function kyselyOn(client: PoolClient, schema: string) {
  return new Kysely<Database>({
    dialect: new PostgresDialect({
      pool: {
        // The session is lent, not owned: Kysely's release must not give it back to the pool.
        connect: async () =>
          ({
            query: client.query.bind(client),
            release: () => {},
          }) as unknown as PostgresPoolClient,
        end: async () => {},
      },
    }),
  }).withSchema(schema);
}

const Pay = defineMessage<{ id: string; fail?: boolean }>('qb.Pay');
const { pool } = testPool();
let database: Awaited<ReturnType<typeof testSchema>>;

beforeAll(async () => {
  database = await testSchema(pool);
});
afterAll(async () => {
  await database.drop();
  await pool.end();
});

it('a Kysely query on the session commits with the message, and rolls back with a failure', async () => {
  const persistence = createPostgresPersistence({ pool, schema: database.schema });
  await persistence.install();
  const endpoint = createEndpoint({
    name: 'Payments',
    transport: createInMemoryTransport(),
    logger: silentLogger,
    persistence,
    recoverability: { immediateRetries: 0, delayedRetries: { count: 0, delayMs: 1 } },
  });
  endpoint.handle(Pay, async (payment, ctx) => {
    await kyselyOn(postgresSession(ctx), database.schema)
      .insertInto('ledger')
      .values({ key: payment.id, n: 1 })
      .execute();
    if (payment.fail) throw new Error('after the write');
  });
  await endpoint.start();
  try {
    await endpoint.send(Pay, { id: 'kept' }, { to: 'Payments' });
    await endpoint.send(Pay, { id: 'undone', fail: true }, { to: 'Payments' });
    await expect.poll(() => endpoint.stats.handled + endpoint.stats.movedToErrorQueue).toBe(2);
    expect(await database.count('kept')).toBe(1);
    expect(await database.count('undone')).toBe(0);
  } finally {
    await endpoint.stop();
  }
});
