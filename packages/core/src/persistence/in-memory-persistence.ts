import { UsageError } from '../errors.js';
import type { TransportOperation } from '../transport/transport.js';
import {
  type ClaimResult,
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
      const finish = () => {
        open = false;
        for (const claimKey of held) claims.delete(claimKey);
        endTransaction();
      };
      const assertOpen = () => {
        if (!open) throw new UsageError('The storage transaction has ended.');
      };
      return {
        session: {
          set(key, value) {
            assertOpen();
            writes.set(key, value);
          },
          get(key) {
            return writes.has(key) ? writes.get(key) : data.get(key);
          },
        },
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
          finish();
        },
        async rollback() {
          if (open) finish();
        },
      };
    };
    return {
      begin,
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
    open,
  };
}
