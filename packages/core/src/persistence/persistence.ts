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

/**
 * A durable request awaiting its reply or its deadline (docs/adr/0015-durable-requests.md).
 * Written in the transaction that stores the request message; deleted by the transaction that
 * runs its continuation, so exactly one of the reply and the timeout finds it.
 */
export interface DurableRequestRecord {
  /** The request's correlation id (its message id): what the reply and the timeout carry. */
  readonly correlationId: string;
  /** The continuation's name, as registered with `endpoint.continuation(name, ...)`. */
  readonly continuation: string;
  /** The continuation's state, serialized (JSON). */
  readonly state: string;
  /** When the request times out, in epoch milliseconds. */
  readonly deadline: number;
  /** The instance that sent it: where the outcome is told, if it still waits. */
  readonly requester: string;
}

/**
 * Durable requests' records. Optional for a store: without it, an endpoint refuses
 * `endpoint.continuation` at start. Each call runs on a session of this store's `begin`.
 */
export interface DurableRequestStore<S = unknown> {
  /** Inserts the record in the session's transaction. */
  save(session: S, record: DurableRequestRecord): Promise<void>;
  /**
   * Deletes the record in the session's transaction and returns it; undefined when there is none
   * (the reply or the timeout took it). A concurrent take of the same record waits for this
   * transaction: if it commits, that one finds nothing; if it rolls back, that one takes it.
   */
  take(session: S, correlationId: string): Promise<DurableRequestRecord | undefined>;
  /** The committed record, read without a lock (to tell a durable reply from another). */
  find(correlationId: string): Promise<DurableRequestRecord | undefined>;
  /** Committed records of the endpoint: for operations and tests (it drains to zero). */
  count(): Promise<number>;
}

/** A persistence opened for one endpoint. */
export interface EndpointStorage<S = unknown> {
  /** Durable requests' records; a store without them cannot serve `endpoint.continuation`. */
  readonly requests?: DurableRequestStore<S>;
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
