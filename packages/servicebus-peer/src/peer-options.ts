import type { PeerRight } from './sas.js';

export interface ServiceBusPeerOptions {
  /** Port to listen on (127.0.0.1). @default 0 (any free port) */
  readonly port?: number;
  /** `max_message_size` advertised on links the client sends on. @default 262_144 (Standard tier) */
  readonly maxMessageSizeBytes?: number;
  /** Accepted SAS key name. @default 'RootManageSharedAccessKey' */
  readonly keyName?: string;
  /** Accepted SAS key; it has every right (Manage, Send, Listen). @default 'peer-key' */
  readonly key?: string;
  /**
   * More shared access policies, each with its rights, as a namespace's "Shared access
   * policies" holds them; `peer.connectionStringFor(name)` connects with one. Manage implies
   * Send and Listen, as the portal requires.
   */
  readonly keys?: readonly PeerKey[];
  /**
   * Links with no transfer or settlement for this long are detached with
   * `amqp:link:detach-forced`, as Service Bus detaches idle links (after 10 minutes).
   * @default 600_000
   */
  readonly linkIdleTimeoutMs?: number;
  /**
   * What happens to a link's locked messages when it detaches: `keep` them locked until the lock
   * expires (settling by lock token over `$management` still works), as Service Bus does, or
   * `release` them at once (lenient: what the peer used to do).
   * @default 'keep'
   */
  readonly locksOnDetach?: 'keep' | 'release';
  /**
   * Microsoft Entra ID identities and the rights their role assignments give (Azure Service Bus
   * Data Sender: Send, Data Receiver: Listen, Data Owner: Manage). `peer.credentialFor(name)`
   * is a token credential for one, as `@azure/identity`'s are.
   */
  readonly identities?: readonly PeerIdentity[];
  /**
   * Also serve the management REST API (ATOM over HTTPS, as ServiceBusAdministrationClient
   * uses it) on the same port. Needs the `openssl` CLI for a self-signed certificate.
   * @default true
   */
  readonly management?: boolean;
}

/** An Entra ID identity (object id) and the rights of its role assignments on the namespace. */
export interface PeerIdentity {
  readonly name: string;
  readonly rights: readonly PeerRight[];
}

/** A shared access policy: a key name, its key and what it may do. */
export interface PeerKey {
  readonly name: string;
  readonly key: string;
  readonly rights: readonly PeerRight[];
}

export const serviceBusPeerDefaults = {
  port: 0,
  linkIdleTimeoutMs: 600_000,
  locksOnDetach: 'keep',
  maxMessageSizeBytes: 256 * 1024,
  keyName: 'RootManageSharedAccessKey',
  key: 'peer-key',
  management: true,
} as const;

/** The options with their defaults applied. */
export function peerSettings(options: ServiceBusPeerOptions) {
  return { ...serviceBusPeerDefaults, ...options };
}

export type PeerSettings = ReturnType<typeof peerSettings>;
