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

describe('a failed transaction', () => {
  it('a caught SQL error without a savepoint fails the attempt, even when nothing is sent', async () => {
    const { pool: p } = pool();
    const persistence = createPostgresPersistence({ pool: p, schema: database.schema });
    await persistence.install();
    const name = `Caught-${Math.random().toString(36).slice(2, 8)}`;
    const endpoint = createEndpoint({
      name,
      transport: createInMemoryTransport(),
      logger: silentLogger,
      persistence,
      recoverability: { immediateRetries: 1, delayedRetries: { count: 0, delayMs: 1 } },
    });
    let runs = 0;
    endpoint.handle(Deposit, async (deposit, ctx) => {
      runs++;
      await database.write(postgresSession(ctx), `${name}:${deposit.id}`);
      // PostgreSQL refuses the rest of the transaction; its COMMIT becomes a rollback.
      await postgresSession(ctx)
        .query('SELECT 1 / 0')
        .catch(() => {});
    });
    endpoints.push(endpoint);
    await endpoint.start();
    await endpoint.send(Deposit, { id: 'a' }, { to: name });
    await expect.poll(() => endpoint.stats.movedToErrorQueue).toBe(1);
    expect(runs).toBe(2);
    expect(endpoint.stats.handled).toBe(0);
    expect(await database.count(`${name}:a`)).toBe(0);

    const failed = await endpoint
      .transaction(async (scope) => {
        await database.write(postgresSession(scope), `${name}:scope`);
        await postgresSession(scope)
          .query('SELECT 1 / 0')
          .catch(() => {});
      })
      .catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(PersistenceError);
    expect((failed as Error).message).toMatch(/rolled it back/);
    expect(await database.count(`${name}:scope`)).toBe(0);
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

describe('round trips', () => {
  /** Each statement a pool's connections send, as its verb and table: `INSERT ledger`, `COMMIT`. */
  function recorded(p: pg.Pool): string[] {
    const statements: string[] = [];
    p.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: typeof query }).query = (...args) => {
        const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text: string }).text;
        const [, verb, table] =
          /^(\w+)(?:\s+(?:INTO|FROM))?(?:\s+(?:"\w+"\.)?"?(\w+)"?)?/.exec(text) ?? [];
        statements.push(verb === 'BEGIN' || verb === 'COMMIT' ? verb : `${verb} ${table}`);
        return query(...args);
      };
    });
    return statements;
  }

  it('a message that sends nothing costs no outbox update and no mark; a transaction inserts its record whole', async () => {
    // One connection: what a test query sees of the session is what the endpoint left on it.
    const { pool: p } = pool({ max: 1 });
    const statements = recorded(p);
    const persistence = createPostgresPersistence({ pool: p, schema: database.schema });
    const name = `Trips-${Math.random().toString(36).slice(2, 8)}`;
    const transport = createInMemoryTransport();
    const endpoint = createEndpoint({
      name,
      transport,
      logger: silentLogger,
      persistence,
      // No background sweep among the counted statements.
      outbox: { dispatchIntervalMs: 3_600_000 },
      routes: { [Deposited.name]: `${name}-audit` },
    });
    endpoint.handle(Deposit, async (deposit, ctx) => {
      await database.write(postgresSession(ctx), `${name}:${deposit.id}`);
      if (deposit.id === 'sends') await ctx.send(Deposited, deposit);
    });
    const audit = createEndpoint({ name: `${name}-audit`, transport, logger: silentLogger });
    let audited = 0;
    audit.handle(Deposited, () => void audited++);
    endpoints.push(endpoint, audit);
    await persistence.install();
    await audit.start();
    await endpoint.start();
    statements.splice(0);

    await endpoint.send(Deposit, { id: 'quiet' }, { to: name });
    await expect.poll(() => endpoint.stats.handled).toBe(1);
    expect(statements.splice(0)).toEqual([
      'BEGIN',
      'INSERT tidings_outbox',
      'INSERT ledger',
      'COMMIT',
    ]);

    await endpoint.send(Deposit, { id: 'sends' }, { to: name });
    await expect.poll(() => statements.length).toBe(6);
    expect(statements.splice(0)).toEqual([
      'BEGIN',
      'INSERT tidings_outbox',
      'INSERT ledger',
      'UPDATE tidings_outbox',
      'COMMIT',
      'UPDATE tidings_outbox', // the mark, after the dispatch
    ]);

    await endpoint.transaction(async (scope) => {
      await database.write(postgresSession(scope), `${name}:scope`);
      await scope.send(Deposited, { id: 'scope' });
    });
    await expect.poll(() => statements.length).toBe(5);
    expect(statements.splice(0)).toEqual([
      'BEGIN',
      'INSERT ledger',
      'INSERT tidings_outbox',
      'COMMIT',
      'UPDATE tidings_outbox',
    ]);
    await expect.poll(() => audited).toBe(2);
    expect(await storageRecords(name)).toEqual([
      { dispatched: true, operations: 0 },
      { dispatched: true, operations: 1 },
      { dispatched: true, operations: 1 },
    ]);
    // The mark commits without waiting for its flush, and leaves the session's setting as it was.
    const setting = await p.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
    expect(setting.rows[0]?.synchronous_commit).toBe('on');
  });

  /** The endpoint's outbox records, by how many operations they hold. */
  async function storageRecords(endpoint: string) {
    const result = await admin.query<{ dispatched: boolean; operations: number }>(
      `SELECT dispatched_at IS NOT NULL AS dispatched, json_array_length(operations::json) AS operations FROM "${database.schema}".tidings_outbox WHERE endpoint = $1 ORDER BY operations`,
      [endpoint],
    );
    return result.rows;
  }
});
