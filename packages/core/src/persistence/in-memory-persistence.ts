import { UsageError } from '../errors.js';
import type { TransportOperation } from '../transport/transport.js';
import {
  type ClaimResult,
  type DurableRequestRecord,
  type DurableRequestStore,
  type EndpointStorage,
  type OutboxRecord,
  PERSISTENCE_SPI_VERSION,
  type Persistence,
  type PersistenceContext,
  type StorageTransaction,
} from './persistence.js';

/**
 * The session of the in-memory persistence: a key-value store whose writes become visible to
 * others when the transaction commits, and vanish when it rolls back.
 */
export interface InMemorySession {
  set(key: string, value: unknown): void;
  /** This transaction's own write, else the committed value. */
  get(key: string): unknown;
}

/** An in-memory persistence, for tests: one process, gone when it ends. */
export interface InMemoryPersistence extends Persistence<InMemorySession> {
  /** What sessions committed (`session.set`), across endpoints. */
  readonly data: ReadonlyMap<string, unknown>;
  /** The outbox records of an endpoint, as committed. */
  records(endpointName: string): readonly OutboxRecord[];
  /** The durable request records of an endpoint, as committed. */
  requests(endpointName: string): readonly DurableRequestRecord[];
}

/** What one open transaction does to durable request records: a record, or null for deleted. */
interface RequestWrites {
  readonly owner: object;
  readonly ended: Promise<void>;
  readonly writes: Map<string, DurableRequestRecord | null>;
  readonly locks: string[];
  open: boolean;
}

interface StoredRecord {
  operations: readonly TransportOperation[];
  createdAt: number;
  dispatchedAt: number | undefined;
}

/** The transactions holding claims that have not ended yet, and what they wait on. */
interface Claim {
  readonly owner: object;
  readonly ended: Promise<void>;
}

/**
 * Creates an in-memory persistence with the semantics of a database with row locks: a claim on a
 * key another open transaction holds waits for it to end.
 */
export function createInMemoryPersistence(): InMemoryPersistence {
  const data = new Map<string, unknown>();
  const endpoints = new Map<string, Map<string, StoredRecord>>();
  const claims = new Map<string, Claim>();
  const requestTables = new Map<string, Map<string, DurableRequestRecord>>();
  /** Row locks on request records: taken by `take`, held until the transaction ends. */
  const requestLocks = new Map<string, Claim>();
  const transactions = new WeakMap<InMemorySession, RequestWrites>();
  const requestsOf = (endpointName: string) => {
    let table = requestTables.get(endpointName);
    if (table === undefined) {
      table = new Map();
      requestTables.set(endpointName, table);
    }
    return table;
  };
  const recordsOf = (endpointName: string) => {
    let records = endpoints.get(endpointName);
    if (records === undefined) {
      records = new Map();
      endpoints.set(endpointName, records);
    }
    return records;
  };
  const toRecord = (key: string, stored: StoredRecord): OutboxRecord => ({
    key,
    operations: stored.operations,
    dispatched: stored.dispatchedAt !== undefined,
  });

  const open = async ({
    endpointName,
  }: PersistenceContext): Promise<EndpointStorage<InMemorySession>> => {
    const records = recordsOf(endpointName);
    const requestTable = requestsOf(endpointName);
    const transactionOf = (session: InMemorySession): RequestWrites => {
      const state = transactions.get(session);
      if (state === undefined || !state.open) {
        throw new UsageError('The storage transaction has ended.');
      }
      return state;
    };
    const requests: DurableRequestStore<InMemorySession> = {
      async save(session, record) {
        const tx = transactionOf(session);
        if (requestTable.has(record.correlationId) || tx.writes.get(record.correlationId)) {
          throw new UsageError(`A durable request '${record.correlationId}' exists already.`);
        }
        tx.writes.set(record.correlationId, { ...record });
      },
      async take(session, correlationId) {
        const tx = transactionOf(session);
        const lockKey = `${endpointName}\u0000${correlationId}`;
        for (;;) {
          const holder = requestLocks.get(lockKey);
          if (holder === undefined || holder.owner === tx.owner) break;
          await holder.ended;
          transactionOf(session);
        }
        const own = tx.writes.get(correlationId);
        const record = own === undefined ? requestTable.get(correlationId) : own;
        if (record === undefined || record === null) return undefined;
        requestLocks.set(lockKey, { owner: tx.owner, ended: tx.ended });
        tx.locks.push(lockKey);
        tx.writes.set(correlationId, null);
        return record;
      },
      async find(correlationId) {
        return requestTable.get(correlationId);
      },
      async count() {
        return requestTable.size;
      },
    };
    const begin = async (): Promise<StorageTransaction<InMemorySession>> => {
      const owner = {};
      const writes = new Map<string, unknown>();
      const held: string[] = [];
      const staged = new Map<string, StoredRecord>();
      let endTransaction!: () => void;
      const ended = new Promise<void>((resolve) => {
        endTransaction = resolve;
      });
      let open = true;
      const requestWrites: RequestWrites = {
        owner,
        ended,
        writes: new Map(),
        locks: [],
        open: true,
      };
      const finish = () => {
        open = false;
        requestWrites.open = false;
        for (const claimKey of held) claims.delete(claimKey);
        for (const lockKey of requestWrites.locks) requestLocks.delete(lockKey);
        endTransaction();
      };
      const assertOpen = () => {
        if (!open) throw new UsageError('The storage transaction has ended.');
      };
      const session: InMemorySession = {
        set(key, value) {
          assertOpen();
          writes.set(key, value);
        },
        get(key) {
          return writes.has(key) ? writes.get(key) : data.get(key);
        },
      };
      transactions.set(session, requestWrites);
      return {
        session,
        async claim(key): Promise<ClaimResult> {
          const claimKey = `${endpointName}\u0000${key}`;
          for (;;) {
            assertOpen();
            const existing = records.get(key);
            if (existing !== undefined)
              return { kind: 'duplicate', record: toRecord(key, existing) };
            const holder = claims.get(claimKey);
            if (holder === undefined || holder.owner === owner) break;
            await holder.ended;
          }
          claims.set(claimKey, { owner, ended });
          held.push(claimKey);
          staged.set(key, { operations: [], createdAt: Date.now(), dispatchedAt: undefined });
          return { kind: 'claimed' };
        },
        async store(key, operations) {
          assertOpen();
          const record = staged.get(key);
          if (record === undefined) throw new UsageError(`Key '${key}' was not claimed here.`);
          record.operations = [...operations];
          if (operations.length === 0) record.dispatchedAt = Date.now();
        },
        async commit() {
          assertOpen();
          for (const [key, value] of writes) data.set(key, value);
          for (const [key, record] of staged) records.set(key, record);
          for (const [key, record] of requestWrites.writes) {
            if (record === null) requestTable.delete(key);
            else requestTable.set(key, record);
          }
          finish();
        },
        async rollback() {
          if (open) finish();
        },
      };
    };
    return {
      begin,
      requests,
      async markDispatched(key) {
        const record = records.get(key);
        if (record !== undefined) record.dispatchedAt ??= Date.now();
      },
      async undispatched({ olderThanMs, limit }) {
        const before = Date.now() - olderThanMs;
        return [...records]
          .filter(([, record]) => record.dispatchedAt === undefined && record.createdAt <= before)
          .slice(0, limit)
          .map(([key, record]) => toRecord(key, record));
      },
      async cleanup({ olderThanMs }) {
        const before = Date.now() - olderThanMs;
        let deleted = 0;
        for (const [key, record] of records) {
          if (record.dispatchedAt !== undefined && record.dispatchedAt <= before) {
            records.delete(key);
            deleted++;
          }
        }
        return deleted;
      },
      async close() {},
    };
  };

  return {
    spiVersion: PERSISTENCE_SPI_VERSION,
    name: 'in-memory',
    data,
    records: (endpointName) =>
      [...(endpoints.get(endpointName) ?? [])].map(([key, record]) => toRecord(key, record)),
    requests: (endpointName) => [...(requestTables.get(endpointName)?.values() ?? [])],
    open,
  };
}
