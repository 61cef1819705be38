import { createHash } from 'node:crypto';
import {
  type ClaimResult,
  decodeOperations,
  type EndpointStorage,
  encodeOperations,
  PERSISTENCE_SPI_VERSION,
  type Persistence,
  type PersistenceContext,
  PersistenceError,
  type StorageTransaction,
  storageSession,
} from '@tidings/core';
import type { TransportOperation } from '@tidings/core/transport';
import type { Pool, PoolClient } from 'pg';
import { toPersistenceError } from './errors.js';
import {
  type PostgresPersistenceOptions,
  type ResolvedPostgresOptions,
  resolvePostgresOptions,
} from './options.js';
import { PostgresDurableRequests } from './postgres-durable-requests.js';
import { postgresSchemaSql } from './schema.js';

/** The Postgres persistence: its session is a `pg` client inside `BEGIN`. */
export interface PostgresPersistence extends Persistence<PoolClient> {
  /**
   * Creates the schema, the outbox table and its indexes, and the durable requests table, where
   * missing; safe to run again.
   */
  install(): Promise<void>;
  /** The SQL `install` runs, for a migration tool of your own. */
  readonly schemaSql: string;
  /** The outbox table, quoted and qualified: `"public"."tidings_outbox"`. */
  readonly qualifiedTable: string;
}

/**
 * The storage session of a handler context or a transaction scope: the `pg` client whose
 * transaction the message's inbox and outbox records commit in. Run your queries on it (or give
 * it to Kysely, Drizzle, ...); do not `release` it, `COMMIT` or `ROLLBACK`: the endpoint does.
 */
export function postgresSession(contextOrScope: object): PoolClient {
  return storageSession<PoolClient>(contextOrScope);
}

/** Creates the Postgres persistence for `createEndpoint({ ..., persistence })`. */
export function createPostgresPersistence(
  options: PostgresPersistenceOptions,
): PostgresPersistence {
  const resolved = resolvePostgresOptions(options);
  const schemaSql = postgresSchemaSql(resolved);
  return {
    spiVersion: PERSISTENCE_SPI_VERSION,
    name: 'postgres',
    schemaSql,
    qualifiedTable: resolved.qualifiedTable,
    async install() {
      try {
        await resolved.pool.query(schemaSql);
      } catch (error) {
        throw toPersistenceError(error, `install ${resolved.qualifiedTable}`);
      }
    },
    async open(context: PersistenceContext) {
      return new PostgresEndpointStorage(resolved, context.endpointName);
    },
  };
}

/**
 * A connection from the pool within `timeoutMs`, or a retryable `PersistenceError`: an exhausted
 * pool is back-pressure up to that point, then a clear failure the recoverability policy retries,
 * never a wait without end (a handler that takes a second connection while holding one could).
 */
function connect(pool: Pool, timeoutMs: number): Promise<PoolClient> {
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(
        new PersistenceError(
          `No PostgreSQL connection came free within ${timeoutMs} ms (pool max ${pool.options.max ?? 10}, ${pool.waitingCount} waiting): size the pool for the endpoint's concurrency plus what else uses it, or lower the concurrency.`,
          { isRetryable: true },
        ),
      );
    }, timeoutMs);
    pool.connect().then(
      (client) => {
        clearTimeout(timer);
        if (timedOut) client.release();
        else resolve(client);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!timedOut) reject(toPersistenceError(error, 'connect'));
      },
    );
  });
}

/** A statement prepared once per connection, under a name derived from its text. */
interface Prepared {
  readonly name: string;
  readonly text: string;
}

/**
 * Named, so that PostgreSQL parses and plans each once per connection rather than once per
 * message. The name is a digest of the text: two tables on one pool never share a name.
 */
function prepared(text: string): Prepared {
  return { name: `tidings_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`, text };
}

/** The statements of one endpoint, built once: the table name is fixed, values are parameters. */
interface Statements {
  readonly claim: Prepared;
  readonly read: Prepared;
  readonly store: Prepared;
  readonly markDispatched: Prepared;
  readonly undispatched: string;
  readonly cleanup: string;
}

/** A mark waiting for the next batch. */
interface PendingMark {
  readonly key: string;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Most keys in one batched mark. */
const markBatchLimit = 500;

class PostgresEndpointStorage implements EndpointStorage<PoolClient> {
  private readonly sql: Statements;
  private readonly marks: PendingMark[] = [];
  private flushing: Promise<void> | undefined;
  readonly requests: PostgresDurableRequests;

  constructor(
    private readonly options: ResolvedPostgresOptions,
    private readonly endpoint: string,
  ) {
    const table = options.qualifiedTable;
    this.requests = new PostgresDurableRequests(
      options.pool,
      endpoint,
      options.qualifiedRequestsTable,
      prepared,
    );
    this.sql = {
      claim: prepared(
        `INSERT INTO ${table} (endpoint, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
      ),
      read: prepared(
        `SELECT operations, dispatched_at IS NOT NULL AS dispatched FROM ${table} WHERE endpoint = $1 AND message_id = $2`,
      ),
      store: prepared(
        `UPDATE ${table} SET operations = $3, dispatched_at = CASE WHEN $4 THEN now() END WHERE endpoint = $1 AND message_id = $2`,
      ),
      markDispatched: prepared(
        `UPDATE ${table} SET dispatched_at = now() WHERE endpoint = $1 AND message_id = ANY($2) AND dispatched_at IS NULL`,
      ),
      undispatched: `SELECT message_id, operations FROM ${table} WHERE endpoint = $1 AND dispatched_at IS NULL AND created_at <= now() - make_interval(secs => $2::double precision / 1000) ORDER BY created_at LIMIT $3`,
      cleanup: `DELETE FROM ${table} WHERE endpoint = $1 AND dispatched_at IS NOT NULL AND dispatched_at <= now() - make_interval(secs => $2::double precision / 1000)`,
    };
  }

  async begin(): Promise<StorageTransaction<PoolClient>> {
    const client = await connect(this.options.pool, this.options.connectTimeoutMs);
    const transaction = new PostgresTransaction(client, this.endpoint, this.sql);
    try {
      await client.query('BEGIN');
    } catch (error) {
      transaction.release(error);
      throw toPersistenceError(error, 'begin a transaction');
    }
    return transaction;
  }

  /**
   * Marks are batched: the first goes out at once, and those that arrive while it runs go
   * together in the next statement. Under load that is one commit (one WAL flush) for many
   * messages instead of one each, at no added wait when idle.
   */
  markDispatched(key: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.marks.push({ key, resolve, reject });
      this.flushing ??= this.flushMarks();
    });
  }

  private async flushMarks(): Promise<void> {
    while (this.marks.length > 0) {
      const batch = this.marks.splice(0, markBatchLimit);
      try {
        await this.options.pool.query({
          ...this.sql.markDispatched,
          values: [this.endpoint, batch.map((mark) => mark.key)],
        });
        for (const mark of batch) mark.resolve();
      } catch (error) {
        const failure = toPersistenceError(error, 'mark outbox records dispatched');
        for (const mark of batch) mark.reject(failure);
      }
    }
    this.flushing = undefined;
  }

  async undispatched(query: { readonly olderThanMs: number; readonly limit: number }) {
    try {
      const result = await this.options.pool.query<{ message_id: string; operations: string }>(
        this.sql.undispatched,
        [this.endpoint, query.olderThanMs, query.limit],
      );
      return result.rows.map((row) => ({
        key: row.message_id,
        operations: decodeOperations(row.operations),
        dispatched: false,
      }));
    } catch (error) {
      throw toPersistenceError(error, 'read undispatched outbox records');
    }
  }

  async cleanup(query: { readonly olderThanMs: number }): Promise<number> {
    try {
      const result = await this.options.pool.query(this.sql.cleanup, [
        this.endpoint,
        query.olderThanMs,
      ]);
      return result.rowCount ?? 0;
    } catch (error) {
      throw toPersistenceError(error, 'delete dispatched outbox records');
    }
  }

  async close(): Promise<void> {
    // The pool is the user's: only the marks under way are ours to finish.
    await this.flushing;
  }
}

class PostgresTransaction implements StorageTransaction<PoolClient> {
  private ended = false;
  /** Set when the connection failed while checked out: it must not go back to the pool. */
  private broken: unknown;
  private readonly onError = (error: unknown) => {
    this.broken = error;
  };

  constructor(
    readonly session: PoolClient,
    private readonly endpoint: string,
    private readonly sql: Statements,
  ) {
    // A connection terminated while no query runs emits 'error' on the client: without a
    // listener that would end the process.
    session.on('error', this.onError);
  }

  async claim(key: string): Promise<ClaimResult> {
    try {
      const inserted = await this.session.query({
        ...this.sql.claim,
        values: [this.endpoint, key],
      });
      if (inserted.rowCount === 1) return { kind: 'claimed' };
      // Another transaction committed the key (this insert waited for it, if it was open).
      const found = await this.session.query<{ operations: string; dispatched: boolean }>({
        ...this.sql.read,
        values: [this.endpoint, key],
      });
      const row = found.rows[0];
      if (row === undefined) {
        throw new PersistenceError(
          'An outbox record conflicted on insert but could not be read; the attempt is retried.',
          { isRetryable: true },
        );
      }
      return {
        kind: 'duplicate',
        record: { key, operations: decodeOperations(row.operations), dispatched: row.dispatched },
      };
    } catch (error) {
      throw toPersistenceError(error, 'record the incoming message');
    }
  }

  async store(key: string, operations: readonly TransportOperation[]): Promise<void> {
    try {
      await this.session.query({
        ...this.sql.store,
        values: [this.endpoint, key, encodeOperations(operations), operations.length === 0],
      });
    } catch (error) {
      throw toPersistenceError(error, 'store the outgoing messages');
    }
  }

  async commit(): Promise<void> {
    if (this.ended) throw new PersistenceError('The transaction has already ended.');
    try {
      await this.session.query('COMMIT');
      this.release(undefined);
    } catch (error) {
      this.release(error);
      throw toPersistenceError(error, 'commit');
    }
  }

  async rollback(): Promise<void> {
    if (this.ended) return;
    try {
      await this.session.query('ROLLBACK');
      this.release(undefined);
    } catch (error) {
      this.release(error);
      throw toPersistenceError(error, 'roll back');
    }
  }

  /** Back to the pool, or destroyed when it failed (a client in an unknown state is not reused). */
  release(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.session.off('error', this.onError);
    const failure = error ?? this.broken;
    this.session.release(
      failure === undefined ? undefined : failure instanceof Error ? failure : true,
    );
  }
}
