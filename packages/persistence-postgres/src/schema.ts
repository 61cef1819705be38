import type { ResolvedPostgresOptions } from './options.js';

/**
 * The SQL that creates the outbox table and its indexes, and the durable requests table; safe to run again. `src/schema.sql` is
 * the same for the default names, for migration tools.
 */
export function postgresSchemaSql(
  options: Pick<ResolvedPostgresOptions, 'schema' | 'table' | 'requestsTable'>,
): string {
  const { schema, table, requestsTable } = options;
  const qualified = `"${schema}"."${table}"`;
  return `CREATE SCHEMA IF NOT EXISTS "${schema}";
CREATE TABLE IF NOT EXISTS ${qualified} (
  endpoint text NOT NULL,
  message_id text NOT NULL,
  operations text NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now(),
  dispatched_at timestamptz,
  PRIMARY KEY (endpoint, message_id)
);
CREATE INDEX IF NOT EXISTS "${table}_undispatched" ON ${qualified} (endpoint, created_at)
  WHERE dispatched_at IS NULL;
CREATE INDEX IF NOT EXISTS "${table}_dispatched" ON ${qualified} (endpoint, dispatched_at)
  WHERE dispatched_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS "${schema}"."${requestsTable}" (
  endpoint text NOT NULL,
  correlation_id text NOT NULL,
  continuation text NOT NULL,
  state text NOT NULL,
  deadline_ms bigint NOT NULL,
  requester text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (endpoint, correlation_id)
);
`;
}
