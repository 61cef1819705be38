import type { DurableRequestRecord, DurableRequestStore } from '@tidings/core';
import type { Pool, PoolClient } from 'pg';
import { toPersistenceError } from './errors.js';
import { type Prepared, prepared, runPrepared } from './prepared.js';

interface RequestRow {
  readonly correlation_id: string;
  readonly continuation: string;
  readonly state: string;
  readonly deadline_ms: string;
  readonly requester: string;
}

const columns = 'correlation_id, continuation, state, deadline_ms, requester';

const toRecord = (row: RequestRow): DurableRequestRecord => ({
  correlationId: row.correlation_id,
  continuation: row.continuation,
  state: row.state,
  // bigint comes back as a string; epoch milliseconds fit a double exactly.
  deadline: Number(row.deadline_ms),
  requester: row.requester,
});

/**
 * Durable requests' records in PostgreSQL. `take` is one `DELETE ... RETURNING`: a concurrent take
 * of the same row waits on its lock, then finds it gone (the other committed) or takes it (the
 * other rolled back). Exactly one of the reply and the deadline runs the continuation.
 */
export class PostgresDurableRequests implements DurableRequestStore<PoolClient> {
  private readonly sql: {
    readonly save: Prepared;
    readonly take: Prepared;
    readonly find: Prepared;
    readonly count: string;
  };

  constructor(
    private readonly pool: Pool,
    private readonly endpoint: string,
    table: string,
  ) {
    this.sql = {
      save: prepared(`INSERT INTO ${table} (endpoint, ${columns}) VALUES ($1, $2, $3, $4, $5, $6)`),
      take: prepared(
        `DELETE FROM ${table} WHERE endpoint = $1 AND correlation_id = $2 RETURNING ${columns}`,
      ),
      find: prepared(`SELECT ${columns} FROM ${table} WHERE endpoint = $1 AND correlation_id = $2`),
      count: `SELECT count(*)::int AS n FROM ${table} WHERE endpoint = $1`,
    };
  }

  async save(session: PoolClient, record: DurableRequestRecord): Promise<void> {
    try {
      await runPrepared(session, this.sql.save, [
        this.endpoint,
        record.correlationId,
        record.continuation,
        record.state,
        record.deadline,
        record.requester,
      ]);
    } catch (error) {
      throw toPersistenceError(error, 'store the durable request');
    }
  }

  async take(session: PoolClient, correlationId: string) {
    try {
      const result = await runPrepared<RequestRow>(session, this.sql.take, [
        this.endpoint,
        correlationId,
      ]);
      const row = result.rows[0];
      return row === undefined ? undefined : toRecord(row);
    } catch (error) {
      throw toPersistenceError(error, 'take the durable request');
    }
  }

  async find(correlationId: string) {
    try {
      const result = await runPrepared<RequestRow>(this.pool, this.sql.find, [
        this.endpoint,
        correlationId,
      ]);
      const row = result.rows[0];
      return row === undefined ? undefined : toRecord(row);
    } catch (error) {
      throw toPersistenceError(error, 'read the durable request');
    }
  }

  async count(): Promise<number> {
    try {
      const result = await this.pool.query<{ n: number }>(this.sql.count, [this.endpoint]);
      return result.rows[0]?.n ?? 0;
    } catch (error) {
      throw toPersistenceError(error, 'count durable requests');
    }
  }
}
