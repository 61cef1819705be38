import { createHash } from 'node:crypto';
import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';

/** A statement prepared once per connection, under a name derived from its text. */
export interface Prepared {
  readonly name: string;
  readonly text: string;
}

/**
 * Named, so that PostgreSQL parses and plans each once per connection rather than once per
 * message. The name is a digest of the text: two tables on one pool never share a name.
 */
export function prepared(text: string): Prepared {
  return { name: `tidings_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`, text };
}

/**
 * Runs a prepared statement with `values`. node-postgres copies every query's config through its
 * property descriptors, a few microseconds a query: given an object that reaches the shared
 * statement's name and text through its prototype, it has nothing to copy.
 */
export function runPrepared<R extends QueryResultRow = QueryResultRow>(
  client: Pool | PoolClient,
  statement: Prepared,
  values: readonly unknown[],
): Promise<QueryResult<R>> {
  return client.query<R>(Object.create(statement) as Prepared, values as unknown[]);
}
