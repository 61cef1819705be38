import { readFileSync } from 'node:fs';
import {
  ConfigurationError,
  createEndpoint,
  createInMemoryTransport,
  defineMessage,
  type Endpoint,
  PersistenceError,
  silentLogger,
} from '@tidings/core';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createPostgresPersistence,
  postgresPersistenceDefaults,
  postgresSchemaSql,
  postgresSession,
} from '../src/index.ts';
import { databaseUrl, testPool, testSchema } from './database.ts';

const Deposit = defineMessage<{ id: string }>('bank.Deposit');
const Deposited = defineMessage<{ id: string }>('bank.Deposited');

const { pool: admin } = testPool({ max: 2 });
let database: Awaited<ReturnType<typeof testSchema>>;
const endpoints: Endpoint[] = [];
const pools: pg.Pool[] = [];

beforeAll(async () => {
  database = await testSchema(admin);
});
afterEach(async () => {
  await Promise.all(endpoints.splice(0).map((endpoint) => endpoint.stop()));
  await Promise.all(pools.splice(0).map((pool) => pool.end()));
});
afterAll(async () => {
  await database.drop();
  await admin.end();
});

function pool(options: pg.PoolConfig = {}) {
  const made = testPool(options);
  pools.push(made.pool);
  return made;
}

describe('options and schema', () => {
  it('refuses a missing pool and identifiers that are not plain', () => {
    expect(() => createPostgresPersistence({} as never)).toThrow(ConfigurationError);
    const { pool: p } = pool();
    expect(() => createPostgresPersistence({ pool: p, table: 'x"; DROP TABLE y; --' })).toThrow(
      /not a plain identifier/,
    );
    expect(() => createPostgresPersistence({ pool: p, schema: '' })).toThrow(ConfigurationError);
  });

  it('ships schema.sql as install runs it for the default names, and installs twice safely', async () => {
    const shipped = readFileSync(new URL('../src/schema.sql', import.meta.url), 'utf8');
    expect(shipped).toBe(postgresSchemaSql(postgresPersistenceDefaults));
    const { pool: p } = pool();
    const persistence = createPostgresPersistence({
      pool: p,
      schema: database.schema,
      table: 'twice',
    });
    await persistence.install();
    await persistence.install();
    const tables = await p.query(
      `SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'twice'`,
      [database.schema],
    );
    expect(tables.rows[0].n).toBe(1);
  });
});

describe('failures', () => {
  it('an exhausted pool fails begin with a retryable PersistenceError, not a hang', async () => {
    const { pool: p } = pool({ max: 1 });
    const persistence = createPostgresPersistence({
      pool: p,
      schema: database.schema,
      connectTimeoutMs: 200,
    });
    await persistence.install();
    const storage = await persistence.open({ endpointName: 'E', logger: silentLogger });
    const held = await storage.begin();
    const error = await storage.begin().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PersistenceError);
    expect(error).toMatchObject({ code: 'TIDINGS_PERSISTENCE', isRetryable: true });
    expect((error as Error).message).toMatch(/pool max 1/);
    await held.rollback();
    // The connection came back: the next transaction gets it.
    const next = await storage.begin();
    await next.rollback();
  });

  it('an unreachable server is a retryable error that does not name its address', async () => {
    const p = new pg.Pool({ connectionString: 'postgres://postgres:s3cret@127.0.0.1:1/test' });
    pools.push(p);
    const persistence = createPostgresPersistence({ pool: p });
    const storage = await persistence.open({ endpointName: 'E', logger: silentLogger });
    const error = await storage.begin().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TIDINGS_PERSISTENCE', isRetryable: true });
    expect((error as Error).message).not.toMatch(/127\.0\.0\.1|s3cret/);
  });

  it('connections terminated under load: handlers fail, retry, and every effect lands once', async () => {
    const { pool: p, applicationName } = pool({ max: 8 });
    const persistence = createPostgresPersistence({ pool: p, schema: database.schema });
    await persistence.install();
    const transport = createInMemoryTransport();
    const name = `Bank-${applicationName.slice(-8)}`;
    const bank = createEndpoint({
      name,
      transport,
      logger: silentLogger,
      persistence,
      concurrency: 8,
      recoverability: { immediateRetries: 20, delayedRetries: { count: 0, delayMs: 1 } },
    });
    let terminations = 0;
    bank.handle(Deposit, async (deposit, ctx) => {
      await database.write(postgresSession(ctx), `${name}:${deposit.id}`);
      await ctx.publish(Deposited, deposit);
    });
    const seen = new Set<string>();
    const audit = createEndpoint({ name: `${name}-audit`, transport, logger: silentLogger });
    audit.handle(Deposited, (deposit) => void seen.add(deposit.id));
    endpoints.push(bank, audit);
    await audit.start();
    await bank.start();
    const total = 300;
    const sending = (async () => {
      for (let i = 0; i < total; i++) await bank.send(Deposit, { id: String(i) }, { to: name });
    })();
    // Terminate every connection of the pool while messages are being handled.
    while (bank.stats.handled < total && terminations < 5) {
      const killed = await admin.query(
        'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1',
        [applicationName],
      );
      terminations += killed.rows[0].n > 0 ? 1 : 0;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await sending;
    await expect.poll(() => seen.size, { timeout: 20_000 }).toBe(total);
    expect(terminations).toBeGreaterThan(0);
    expect(bank.stats.immediateRetries).toBeGreaterThan(0);
    expect(bank.stats.movedToErrorQueue).toBe(0);
    const rows = await admin.query(
      `SELECT count(*)::int AS n FROM "${database.schema}".ledger WHERE key LIKE $1`,
      [`${name}:%`],
    );
    expect(rows.rows[0].n).toBe(total);
  });

  it('uses the session for the handler: its query sees the open transaction', async () => {
    const { pool: p } = pool();
    const persistence = createPostgresPersistence({ pool: p, schema: database.schema });
    await persistence.install();
    const transport = createInMemoryTransport();
    const name = 'Session';
    const endpoint = createEndpoint({ name, transport, logger: silentLogger, persistence });
    const seen: string[] = [];
    endpoint.handle(Deposit, async (_deposit, ctx) => {
      const result = await postgresSession(ctx).query<{ key: string }>(
        `SELECT message_id AS key FROM ${persistence.qualifiedTable} WHERE endpoint = $1`,
        [name],
      );
      seen.push(...result.rows.map((row) => row.key));
    });
    endpoints.push(endpoint);
    await endpoint.start();
    await endpoint.send(Deposit, { id: 'x' }, { to: name, messageId: 'in-tx' });
    await expect.poll(() => seen).toEqual(['in-tx']);
    expect(databaseUrl).toMatch(/^postgres/);
  });
});

describe('marks', () => {
  it('marks many records dispatched at once, each resolved once its batch is written', async () => {
    const { pool: p } = pool();
    const persistence = createPostgresPersistence({ pool: p, schema: database.schema });
    await persistence.install();
    const storage = await persistence.open({ endpointName: 'Marks', logger: silentLogger });
    const keys = Array.from({ length: 60 }, (_, i) => `mark-${i}`);
    for (const key of keys) {
      const tx = await storage.begin();
      await tx.claim(key);
      await tx.store(key, [
        {
          message: { messageId: key, headers: {}, body: new Uint8Array([1]) },
          destination: { kind: 'queue', queue: 'Q' },
        },
      ]);
      await tx.commit();
    }
    expect(await storage.undispatched({ olderThanMs: 0, limit: 100 })).toHaveLength(60);
    await Promise.all(keys.map((key) => storage.markDispatched(key)));
    expect(await storage.undispatched({ olderThanMs: 0, limit: 100 })).toEqual([]);
    await storage.close();
  });
});
