import type { Socket } from 'node:net';
import type { Connection, Delivery, Receiver, Sender } from 'rhea';
import { type Claim, createKeyring, type Keyring } from './claims.js';
import type { MessageEntity, Topic } from './entities.js';
import type { PeerSettings } from './peer-options.js';

export interface PeerCounters {
  tokensPut: number;
  deliveries: number;
  completed: number;
  abandoned: number;
  deadLettered: number;
  scheduled: number;
  duplicatesDropped: number;
}

/** Faults a test asked for, taken one by one as the requests they hit arrive. */
export interface PeerFaults {
  /** Settlements still to fail with `com.microsoft:message-lock-lost`. */
  settlements: number;
  /** Statuses for the next management (HTTPS) requests. */
  readonly management: Array<429 | 503>;
  /** Conditions to refuse the next transfers clients send with. */
  readonly sends: string[];
}

/**
 * What the peer's parts share: its settings and keys, the namespace's entities, the clients'
 * connections, links and claims, the counters behind `stats` and the faults still to inject.
 */
export interface PeerState {
  readonly settings: PeerSettings;
  readonly keyring: Keyring;
  readonly claims: Map<Connection, Claim[]>;
  readonly queues: Map<string, MessageEntity>;
  readonly topics: Map<string, Topic>;
  /** AMQP client sockets (`stats.connections`). */
  readonly sockets: Set<Socket>;
  /** Links clients receive on, by connection, with the entity each reads. */
  readonly consumerLinks: Map<Connection, Map<Sender, MessageEntity>>;
  /** Links $cbs and $management answer on, by connection, by link name and target address. */
  readonly replyLinks: Map<Connection, Map<string, Sender>>;
  /** Links clients send on, by the entity they send to (for `senderCount`). */
  readonly inboundLinks: Map<Receiver, string>;
  /** When each client link last moved a message or a settlement (idle links are detached). */
  readonly lastUse: Map<Sender | Receiver, number>;
  /** The lock a delivery holds, until the client settles it. */
  readonly deliveryLocks: WeakMap<Delivery, { entity: MessageEntity; token: string }>;
  readonly counters: PeerCounters;
  readonly faults: PeerFaults;
  /** Paths of disabled entities (`disableEntity`). */
  readonly disabled: Set<string>;
}

export function createPeerState(settings: PeerSettings): PeerState {
  return {
    settings,
    keyring: createKeyring(settings),
    claims: new Map(),
    queues: new Map(),
    topics: new Map(),
    sockets: new Set(),
    consumerLinks: new Map(),
    replyLinks: new Map(),
    inboundLinks: new Map(),
    lastUse: new Map(),
    deliveryLocks: new WeakMap(),
    counters: {
      tokensPut: 0,
      deliveries: 0,
      completed: 0,
      abandoned: 0,
      deadLettered: 0,
      scheduled: 0,
      duplicatesDropped: 0,
    },
    faults: { settlements: 0, management: [], sends: [] },
    disabled: new Set(),
  };
}
