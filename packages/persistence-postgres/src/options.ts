import { ConfigurationError, checkWholeNumber } from '@tidings/core';
import type { Pool } from 'pg';

export interface PostgresPersistenceOptions {
  /**
   * Your node-postgres pool. The persistence borrows connections from it and never ends it. Size
   * it for the endpoint's `concurrency` (one transaction per message being handled) plus what
   * `endpoint.transaction` and your own code use at once. Attach `pool.on('error', ...)`: an idle
   * connection the server terminates emits there.
   */
  readonly pool: Pool;
  /**
   * Schema of the outbox table; created by `install()` if missing.
   * @default 'public'
   */
  readonly schema?: string;
  /**
   * The outbox table (one row per handled message and per `endpoint.transaction`, keyed by
   * endpoint and message id). Give endpoints tables of their own by giving each its own name.
   * @default 'tidings_outbox'
   */
  readonly table?: string;
  /**
   * The durable requests table (one row per request awaiting its reply or its deadline, keyed by
   * endpoint and correlation id; see docs/adr/0015-durable-requests.md).
   * @default 'tidings_requests'
   */
  readonly requestsTable?: string;
  /**
   * How long a transaction waits for a free connection from the pool. Past it, the attempt fails
   * with a retryable `PersistenceError` (and is retried by the recoverability policy) instead of
   * waiting without end on an exhausted pool.
   * @default 10_000
   */
  readonly connectTimeoutMs?: number;
}

export const postgresPersistenceDefaults = {
  schema: 'public',
  table: 'tidings_outbox',
  requestsTable: 'tidings_requests',
  connectTimeoutMs: 10_000,
} as const;

/** Plain identifiers only: they are quoted into SQL, and every tool should read them as written. */
const identifier = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export interface ResolvedPostgresOptions {
  readonly pool: Pool;
  readonly schema: string;
  readonly table: string;
  readonly requestsTable: string;
  readonly connectTimeoutMs: number;
  /** `"schema"."table"`, quoted. */
  readonly qualifiedTable: string;
  /** `"schema"."requestsTable"`, quoted. */
  readonly qualifiedRequestsTable: string;
}

function checkIdentifier(what: string, value: unknown): string {
  if (typeof value !== 'string' || !identifier.test(value)) {
    throw new ConfigurationError(
      `${what} ${JSON.stringify(value)} is not a plain identifier: use 1-63 letters, digits or '_', starting with a letter or '_'.`,
    );
  }
  return value;
}

export function resolvePostgresOptions(
  options: PostgresPersistenceOptions,
): ResolvedPostgresOptions {
  if (
    options === null ||
    typeof options !== 'object' ||
    typeof options.pool?.connect !== 'function'
  ) {
    throw new ConfigurationError(
      "createPostgresPersistence needs { pool }: a node-postgres Pool (import { Pool } from 'pg').",
    );
  }
  const schema = checkIdentifier('schema', options.schema ?? postgresPersistenceDefaults.schema);
  const table = checkIdentifier('table', options.table ?? postgresPersistenceDefaults.table);
  const requestsTable = checkIdentifier(
    'requestsTable',
    options.requestsTable ?? postgresPersistenceDefaults.requestsTable,
  );
  return {
    pool: options.pool,
    schema,
    table,
    requestsTable,
    connectTimeoutMs: checkWholeNumber(
      'connectTimeoutMs',
      options.connectTimeoutMs ?? postgresPersistenceDefaults.connectTimeoutMs,
    ),
    qualifiedTable: `"${schema}"."${table}"`,
    qualifiedRequestsTable: `"${schema}"."${requestsTable}"`,
  };
}
