import type { Logger } from '../logging/logger.js';
import type { TransportOperation } from '../transport/transport.js';

/**
 * The persistence SPI version this core speaks. A persistence states the version it implements;
 * core refuses another one at `createEndpoint` instead of failing in odd ways later.
 */
export const PERSISTENCE_SPI_VERSION = 1;

/**
 * One record per handled message (or per `endpoint.transaction`): its existence is the inbox entry,
 * its operations the outbox. See docs/adr/0012-outbox-and-inbox.md.
 */
export interface OutboxRecord {
  /** The record's key within its endpoint (`inboxKey` of the message id, or `tx:` and an id). */
  readonly key: string;
  /** What the handling sends, built in full (ids, headers, bodies). Empty when it sends nothing. */
  readonly operations: readonly TransportOperation[];
  /** The operations have left (or there were none). */
  readonly dispatched: boolean;
}

/** What `claim` found: the key is now this transaction's, or a committed record already has it. */
export type ClaimResult =
  | { readonly kind: 'claimed' }
  | { readonly kind: 'duplicate'; readonly record: OutboxRecord };

/**
 * One open database transaction. After `commit` or `rollback` settles (resolved or rejected) it
 * is finished and its connection released; a `rollback` after that does nothing.
 */
export interface StorageTransaction<S = unknown> {
  /** The store's handle on the transaction: what the user's own queries run on. */
  readonly session: S;
  /**
   * Inserts the record's key (with no operations yet). A concurrent transaction holding the same
   * key makes this wait until it ends: if it committed, the result is `duplicate` with its record;
   * if it rolled back, the key is claimed here.
   */
  claim(key: string): Promise<ClaimResult>;
  /** Writes the operations into the claimed record; with none, it is marked dispatched at once. */
  store(key: string, operations: readonly TransportOperation[]): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
}

/** A persistence opened for one endpoint. */
export interface EndpointStorage<S = unknown> {
  begin(): Promise<StorageTransaction<S>>;
  /** Outside any transaction: the record's operations have left. */
  markDispatched(key: string): Promise<void>;
  /** Records whose operations have not left, committed at least `olderThanMs` ago, oldest first. */
  undispatched(query: {
    readonly olderThanMs: number;
    readonly limit: number;
  }): Promise<readonly OutboxRecord[]>;
  /** Deletes dispatched records older than `olderThanMs`; returns how many. */
  cleanup(query: { readonly olderThanMs: number }): Promise<number>;
  /** Releases what `open` took. Never closes a pool the user passed in. */
  close(): Promise<void>;
}

export interface PersistenceContext {
  readonly endpointName: string;
  readonly logger: Logger;
}

/**
 * A store for the outbox and inbox (a database). `S` is its session type: what a handler's own
 * queries run on, e.g. a node-postgres client inside `BEGIN`.
 */
export interface Persistence<S = unknown> {
  readonly spiVersion: typeof PERSISTENCE_SPI_VERSION;
  /** Short name for logs and errors, e.g. `postgres`. */
  readonly name: string;
  /** Called at `endpoint.start()`: prepares the endpoint's storage (it does not create tables). */
  open(context: PersistenceContext): Promise<EndpointStorage<S>>;
}
