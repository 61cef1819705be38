import { UsageError } from '../errors.js';

/** Handler contexts and transaction scopes → their storage session. Weak: nothing outlives them. */
const sessions = new WeakMap<object, unknown>();

/**
 * Gives `owner` (a handler context, a transaction scope) its storage session. Core calls it for
 * each attempt; a test kit calls it to hand a handler under test a session of its own.
 */
export function attachStorageSession(owner: object, session: unknown): void {
  sessions.set(owner, session);
}

/**
 * The storage session of a handler context or a transaction scope: the open transaction that the
 * outbox and inbox commit in (for `@tidings/persistence-postgres`, a `pg` client inside `BEGIN`).
 * Store packages export a typed accessor over it (`postgresSession(ctx)`).
 * @throws UsageError when the endpoint has no `persistence`
 */
export function storageSession<S = unknown>(owner: object): S {
  if (!sessions.has(owner)) {
    throw new UsageError(
      'This handler context has no storage session: give the endpoint a `persistence` (createEndpoint({ ..., persistence })) to handle messages in a database transaction.',
    );
  }
  return sessions.get(owner) as S;
}
