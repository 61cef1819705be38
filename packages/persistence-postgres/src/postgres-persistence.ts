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
import { type Prepared, prepared, runPrepared } from './prepared.js';
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
 * A connection from the pool within `timeoutMs`, handed to `adopt`, or a retryable
 * `PersistenceError`: an exhausted pool is back-pressure up to that point, then a clear failure
 * the recoverability policy retries, never a wait without end (a handler that takes a second
 * connection while holding one could).
 *
 * The pool's callback form: it runs within the read that completed the connection, so `adopt`
 * listens for the connection's errors before the rest of that read is handled. A termination
 * that arrived with the handshake (`pg_terminate_backend`, a server going down) would otherwise
 * be emitted with no listener between the pool's promise and its continuation, and end the
 * process.
 */
function connect<T>(pool: Pool, timeoutMs: number, adopt: (client: PoolClient) => T): Promise<T> {
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
    pool.connect((error, client) => {
      clearTimeout(timer);
      if (error !== undefined && error !== null) {
        if (!timedOut) reject(toPersistenceError(error, 'connect'));
      } else if (client !== undefined) {
        if (timedOut) client.release();
        else resolve(adopt(client));
      }
    });
  });
}

/** The statements of one endpoint, built once: the table name is fixed, values are parameters. */
interface Statements {
  readonly claim: Prepared;
  readonly read: Prepared;
  readonly store: Prepared;
  readonly insert: Prepared;
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
    );
    this.sql = {
      // Claimed as a record that sends nothing (dispatched): `store` changes it only when the
      // handling sends something, so a message that sends nothing costs no second statement.
      claim: prepared(
        `INSERT INTO ${table} (endpoint, message_id, dispatched_at) VALUES ($1, $2, now()) ON CONFLICT DO NOTHING`,
      ),
      read: prepared(
        `SELECT operations, dispatched_at IS NOT NULL AS dispatched FROM ${table} WHERE endpoint = $1 AND message_id = $2`,
      ),
      store: prepared(
        `UPDATE ${table} SET operations = $3, dispatched_at = NULL WHERE endpoint = $1 AND message_id = $2`,
      ),
      insert: prepared(
        `INSERT INTO ${table} (endpoint, message_id, operations) VALUES ($1, $2, $3)`,
      ),
      // Committed without waiting for the WAL flush (set_config(..., true) lasts until this
      // statement's own transaction ends): a mark lost with a crash of the database only means
      // the dispatcher sends the record again, with the same message ids, as after any failed
      // mark. That saves a flush per message, which otherwise queues with the flushes of the
      // commits that matter.
      markDispatched: prepared(
        `UPDATE ${table} SET dispatched_at = now() FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async WHERE endpoint = $1 AND message_id = ANY($2) AND dispatched_at IS NULL`,
      ),
      undispatched: `SELECT message_id, operations FROM ${table} WHERE endpoint = $1 AND dispatched_at IS NULL AND created_at <= now() - make_interval(secs => $2::double precision / 1000) ORDER BY created_at LIMIT $3`,
      cleanup: `DELETE FROM ${table} WHERE endpoint = $1 AND dispatched_at IS NOT NULL AND dispatched_at <= now() - make_interval(secs => $2::double precision / 1000)`,
    };
  }

  async begin(): Promise<StorageTransaction<PoolClient>> {
    const transaction = await connect(
      this.options.pool,
      this.options.connectTimeoutMs,
      (client) => new PostgresTransaction(client, this.endpoint, this.sql),
    );
    try {
      await transaction.session.query('BEGIN');
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
        await runPrepared(this.options.pool, this.sql.markDispatched, [
          this.endpoint,
          batch.map((mark) => mark.key),
        ]);
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

/**
 * `endpoint.transaction` keys (the persistence SPI's `OutboxRecord.key`): `tx:` and a new id, which
 * no incoming message's key can be. No other transaction can hold or have committed one, so its
 * claim needs no statement: the record is inserted whole by `store`.
 */
const freshKeyPrefix = 'tx:';

class PostgresTransaction implements StorageTransaction<PoolClient> {
  private ended = false;
  /** A `tx:` key claimed without a statement: `store` inserts its record. */
  private fresh: string | undefined;
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
    if (key.startsWith(freshKeyPrefix)) {
      this.fresh = key;
      return { kind: 'claimed' };
    }
    try {
      const inserted = await runPrepared(this.session, this.sql.claim, [this.endpoint, key]);
      if (inserted.rowCount === 1) return { kind: 'claimed' };
      // Another transaction committed the key (this insert waited for it, if it was open).
      const found = await runPrepared<{ operations: string; dispatched: boolean }>(
        this.session,
        this.sql.read,
        [this.endpoint, key],
      );
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

  /**
   * With nothing to send, the claim's record stands as it is (dispatched, no operations); a fresh
   * key that sends nothing needs no record at all, since no message can be received under it.
   */
  async store(key: string, operations: readonly TransportOperation[]): Promise<void> {
    if (operations.length === 0) return;
    const statement = key === this.fresh ? this.sql.insert : this.sql.store;
    try {
      await runPrepared(this.session, statement, [
        this.endpoint,
        key,
        encodeOperations(operations),
      ]);
    } catch (error) {
      throw toPersistenceError(error, 'store the outgoing messages');
    }
  }

  async commit(): Promise<void> {
    if (this.ended) throw new PersistenceError('The transaction has already ended.');
    let result: { command: string };
    try {
      result = await this.session.query('COMMIT');
      this.release(undefined);
    } catch (error) {
      this.release(error);
      throw toPersistenceError(error, 'commit');
    }
    // PostgreSQL answers `COMMIT` in a failed transaction (a statement's error caught by the
    // handler, with no savepoint) by rolling back, without an error: nothing was written.
    if (result.command === 'ROLLBACK') {
      throw new PersistenceError(
        'The transaction had failed and PostgreSQL rolled it back instead of committing it: a statement failed and its error was caught without rolling back to a savepoint (docs/outbox.md). Nothing was written; the attempt is retried.',
        { isRetryable: true },
      );
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
