import { PersistenceError } from '@tidings/core';

/**
 * SQLSTATE classes and codes after which the same work may succeed on a new attempt: the
 * connection went away (`pg_terminate_backend`, a restart), the server is short of connections,
 * or the transaction lost a race (serialization failure, deadlock).
 */
const retryableStates = new Set(['40001', '40P01', '53300', '57P01', '57P02', '57P03', '55P03']);

/** Node's socket errors: the server cannot be reached right now. */
const unreachable = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
]);

interface PgLikeError {
  readonly code?: unknown;
  readonly message?: unknown;
  readonly severity?: unknown;
}

/**
 * Maps a node-postgres error onto core's taxonomy. A server error keeps its text and SQLSTATE
 * (they name tables and constraints, never credentials); a socket error says only that the server
 * cannot be reached, since its text holds the server's address.
 */
export function toPersistenceError(error: unknown, operation: string): PersistenceError {
  if (error instanceof PersistenceError) return error;
  const { code, message, severity } = (error ?? {}) as PgLikeError;
  const state = typeof code === 'string' ? code : undefined;
  if (state !== undefined && unreachable.has(state)) {
    return new PersistenceError(`PostgreSQL cannot be reached to ${operation} (${state}).`, {
      cause: error,
      isRetryable: true,
    });
  }
  if (typeof severity === 'string' && state !== undefined) {
    return new PersistenceError(
      `PostgreSQL refused to ${operation}: ${String(message)} (SQLSTATE ${state}).`,
      {
        cause: error,
        isRetryable: retryableStates.has(state) || state.startsWith('08'),
      },
    );
  }
  // Connection terminated, client closed, and such: node-postgres's own errors, no SQLSTATE.
  const text = typeof message === 'string' ? message : String(error);
  return new PersistenceError(`PostgreSQL failed to ${operation}: ${text.slice(0, 300)}`, {
    cause: error,
    isRetryable: /terminat|closed|ended|timeout|Connection/i.test(text),
  });
}
