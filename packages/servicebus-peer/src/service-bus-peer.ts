import { DEAD_LETTER_SUFFIX, normalise } from './addresses.js';
import { credentialFor, grantOf, type PeerCredential } from './claims.js';
import { type EntityOptions, type MessageEntity, Topic } from './entities.js';
import { entityDisabled, notFound } from './link-errors.js';
import { createContainer, forget } from './links.js';
import { listen } from './listener.js';
import { createManagementHandler } from './management.js';
import type { ManagedEntity } from './management-atom.js';
import { newEntity, receivable, sendable } from './namespace.js';
import { peerSettings, type ServiceBusPeerOptions } from './peer-options.js';
import { createPeerState } from './peer-state.js';
import { startSweep } from './sweep.js';

export interface PeerMessage {
  readonly sequenceNumber: number;
  readonly messageId: string | undefined;
  readonly applicationProperties: Readonly<Record<string, unknown>>;
  readonly body: unknown;
  readonly deliveryCount: number;
}

export interface PeerStats {
  readonly connections: number;
  /** Links attached now to receive from a queue or subscription, over every connection. */
  readonly receiverLinks: number;
  /** Tokens accepted through CBS put-token (renewals included). */
  readonly tokensPut: number;
  readonly deliveries: number;
  readonly completed: number;
  readonly abandoned: number;
  readonly deadLettered: number;
  readonly scheduled: number;
  readonly duplicatesDropped: number;
}

/** The peer's in-process API: entities, inspection and fault injection for tests. */
export interface ServiceBusPeer {
  readonly port: number;
  /** `Endpoint=sb://127.0.0.1:PORT;...;UseDevelopmentEmulator=true`: plain AMQP, no TLS. */
  readonly connectionString: string;
  /**
   * The self-signed certificate (PEM) the management endpoint serves for 127.0.0.1; trust it
   * with `new ServiceBusAdministrationClient(peer.connectionString, { tlsOptions: { ca } })`.
   * Undefined when started with `management: false`.
   */
  readonly certificate: string | undefined;
  readonly stats: PeerStats;
  /** A connection string with one of the `keys` instead of the main key. */
  connectionStringFor(keyName: string): string;
  /**
   * A credential for one of the `identities`; its tokens live `lifetimeMs` (default 1 hour).
   * The SDK connects with TLS to a `fullyQualifiedNamespace`: use `credentialNamespace`.
   */
  credentialFor(
    identity: string,
    options?: {
      readonly lifetimeMs?: number;
      /** The token's own expiry, when it should run out before the client expects (faults). */
      readonly tokenLifetimeMs?: number;
    },
  ): PeerCredential;
  /**
   * `127.0.0.1:PORT;UseDevelopmentEmulator=true;TestPeer=`: as `fullyQualifiedNamespace` it
   * makes the SDK (7.9) speak plain AMQP to the peer with a credential, as the connection string
   * does with a key: it builds `Endpoint=sb://<namespace>/;...` from it
   * (constructorHelpers.ts, createConnectionContextForCredential), and `TestPeer=` takes the `/`.
   */
  readonly credentialNamespace: string;
  createQueue(name: string, options?: EntityOptions): void;
  deleteQueue(name: string): boolean;
  queueExists(name: string): boolean;
  queueOptions(name: string): EntityOptions | undefined;
  createTopic(name: string): void;
  deleteTopic(name: string): boolean;
  topicExists(name: string): boolean;
  createSubscription(topic: string, name: string, options?: EntityOptions): void;
  deleteSubscription(topic: string, name: string): boolean;
  subscriptionExists(topic: string, name: string): boolean;
  subscriptionOptions(topic: string, name: string): EntityOptions | undefined;
  /** Names of queues, topics and subscriptions (`topic/Subscriptions/name`). */
  entities(): string[];
  /** Messages waiting (not locked, not scheduled) in a queue or `queue/$DeadLetterQueue`. */
  messages(path: string): PeerMessage[];
  /** Messages locked by a receiver and not yet settled. */
  lockedCount(path: string): number;
  /** Receive links attached to a queue or subscription. */
  receiverCount(path: string): number;
  /** Links clients send on to this queue or topic, open now. */
  senderCount(path: string): number;
  scheduledCount(path: string): number;
  /** Fault: destroys every client socket at once, as a network cut would. Returns how many. */
  dropConnections(): number;
  /** Fault: detaches receive links (on `path`, or all) with `amqp:link:detach-forced`. */
  detachLinks(path?: string): number;
  /** Fault: the next `count` settlements fail with `com.microsoft:message-lock-lost`. */
  failNextSettlements(count?: number): void;
  /** Fault: the next `count` management (HTTPS) requests are answered 429 or 503 (throttling). */
  throttleManagement(count: number, status?: 429 | 503): void;
  /**
   * Fault: the next `count` transfers clients send are refused with `condition`, as a busy
   * namespace refuses them (`com.microsoft:server-busy`) or a full one
   * (`amqp:resource-limit-exceeded`, the SDK's QuotaExceeded).
   */
  refuseNextSends(
    count: number,
    condition: 'com.microsoft:server-busy' | 'amqp:resource-limit-exceeded',
  ): void;
  /**
   * Fault: a disabled entity (`com.microsoft:entity-disabled`): its links are detached and
   * attaching again, or sending to it, is refused until `enableEntity`.
   */
  disableEntity(path: string): void;
  enableEntity(path: string): void;
  close(): Promise<void>;
}

/**
 * Starts an AMQP 1.0 peer that plays Azure Service Bus well enough for @azure/service-bus 7.9
 * to send, receive, settle, schedule and manage locks against it. It is not Service Bus: see the
 * package README for what it cannot prove.
 */
export async function startServiceBusPeer(
  options: ServiceBusPeerOptions = {},
): Promise<ServiceBusPeer> {
  const settings = peerSettings(options);
  const state = createPeerState(settings);
  const { keyring, queues, topics, sockets, consumerLinks, inboundLinks, counters, faults } = state;
  const container = createContainer(state);
  const listener = await listen(container, state);
  const { port, certificate, management } = listener;
  // An idle queue goes as `deleteQueue` removes it (the sweep first runs after `peer` exists).
  const sweep = startSweep(state, (name) => peer.deleteQueue(name));

  const entityAt = (path: string): MessageEntity | undefined => receivable(state, path);
  const managed = (name: string, entity: MessageEntity): ManagedEntity => ({
    name,
    options: entity.options,
    messageCount: entity.available.length + entity.locks.size + entity.scheduled.size,
  });

  const connectionStringWith = (keyName: string, key: string) =>
    `Endpoint=sb://127.0.0.1:${port};SharedAccessKeyName=${keyName};SharedAccessKey=${key};UseDevelopmentEmulator=true`;
  const peer: ServiceBusPeer = {
    port,
    certificate: certificate?.cert,
    connectionString: connectionStringWith(settings.keyName, settings.key),
    credentialNamespace: `127.0.0.1:${port};UseDevelopmentEmulator=true;TestPeer=`,
    credentialFor: (identity, credentialOptions) =>
      credentialFor(keyring, identity, credentialOptions),
    connectionStringFor(keyName) {
      const key = keyring.keys.get(keyName);
      if (key === undefined) throw new Error(`The peer has no key named '${keyName}'.`);
      return connectionStringWith(keyName, key);
    },
    get stats(): PeerStats {
      let receiverLinks = 0;
      for (const links of consumerLinks.values()) receiverLinks += links.size;
      return { connections: sockets.size, receiverLinks, ...counters };
    },
    createQueue(name, entityOptions = {}) {
      const path = normalise(name);
      if (!queues.has(path)) queues.set(path, newEntity(state, name, entityOptions));
    },
    deleteQueue(name) {
      const path = normalise(name);
      const queue = queues.get(path);
      queue?.dispose();
      // Service Bus detaches the links of a deleted entity with not-found; a re-attach is refused
      // the same way until it exists again.
      for (const [connection, links] of consumerLinks) {
        for (const [link, entity] of [...links]) {
          const linked = normalise(entity.path);
          if (linked !== path && linked !== `${path}${DEAD_LETTER_SUFFIX}`) continue;
          link.close(notFound(linked));
          forget(state, connection, link);
        }
      }
      return queues.delete(path);
    },
    queueExists: (name) => queues.has(normalise(name)),
    queueOptions: (name) => queues.get(normalise(name))?.options,
    createTopic(name) {
      const path = normalise(name);
      if (!topics.has(path)) topics.set(path, new Topic(name));
    },
    deleteTopic(name) {
      const path = normalise(name);
      topics.get(path)?.dispose();
      return topics.delete(path);
    },
    topicExists: (name) => topics.has(normalise(name)),
    createSubscription(topic, name, entityOptions = {}) {
      const parent = topics.get(normalise(topic));
      if (parent === undefined) throw new Error(`Topic '${topic}' does not exist.`);
      const key = normalise(name);
      if (!parent.subscriptions.has(key)) {
        parent.subscriptions.set(
          key,
          newEntity(state, `${topic}/Subscriptions/${name}`, entityOptions),
        );
      }
    },
    deleteSubscription(topic, name) {
      const parent = topics.get(normalise(topic));
      const subscription = parent?.subscriptions.get(normalise(name));
      subscription?.dispose();
      return parent?.subscriptions.delete(normalise(name)) ?? false;
    },
    subscriptionExists: (topic, name) =>
      topics.get(normalise(topic))?.subscriptions.has(normalise(name)) ?? false,
    subscriptionOptions: (topic, name) =>
      topics.get(normalise(topic))?.subscriptions.get(normalise(name))?.options,
    entities() {
      const names = [...queues.values()].map((q) => q.path);
      for (const topic of topics.values()) {
        names.push(topic.path);
        for (const subscription of topic.subscriptions.values()) names.push(subscription.path);
      }
      return names;
    },
    messages(path) {
      return (entityAt(path)?.available ?? []).map((stored) => ({
        sequenceNumber: stored.sequenceNumber,
        messageId:
          stored.message.message_id === undefined ? undefined : String(stored.message.message_id),
        applicationProperties: { ...stored.message.application_properties },
        body: stored.message.body,
        deliveryCount: stored.deliveryCount,
      }));
    },
    lockedCount: (path) => entityAt(path)?.locks.size ?? 0,
    receiverCount: (path) => entityAt(path)?.consumers.length ?? 0,
    senderCount(path) {
      let count = 0;
      for (const [link, linked] of inboundLinks) {
        if (linked === normalise(path) && link.is_open()) count++;
      }
      return count;
    },
    scheduledCount(path) {
      const target = sendable(state, path);
      return target === undefined ? 0 : target.scheduled.size;
    },
    dropConnections() {
      const count = sockets.size;
      // A reset, not a FIN: the client learns of the cut at once, as with a broken network path.
      for (const socket of sockets) socket.resetAndDestroy();
      return count;
    },
    detachLinks(path) {
      let detached = 0;
      for (const [connection, links] of consumerLinks) {
        for (const [link, entity] of [...links]) {
          if (path !== undefined && normalise(entity.path) !== normalise(path)) continue;
          link.close({
            condition: 'amqp:link:detach-forced',
            description: 'The link was detached by the test peer.',
          });
          forget(state, connection, link);
          detached++;
        }
      }
      return detached;
    },
    failNextSettlements(n = 1) {
      faults.settlements += n;
    },
    throttleManagement(count, status = 429) {
      for (let i = 0; i < count; i++) faults.management.push(status);
    },
    refuseNextSends(count, condition) {
      for (let i = 0; i < count; i++) faults.sends.push(condition);
    },
    disableEntity(path) {
      const disabledPath = normalise(path);
      state.disabled.add(disabledPath);
      for (const [connection, links] of consumerLinks) {
        for (const [link, entity] of [...links]) {
          const linked = normalise(entity.path);
          if (linked !== disabledPath && !linked.startsWith(`${disabledPath}/`)) continue;
          link.close(entityDisabled(linked));
          forget(state, connection, link);
        }
      }
      for (const [link, linked] of [...inboundLinks]) {
        if (linked !== disabledPath) continue;
        link.close(entityDisabled(linked));
        inboundLinks.delete(link);
      }
    },
    enableEntity(path) {
      state.disabled.delete(normalise(path));
    },
    async close() {
      clearInterval(sweep);
      for (const socket of sockets) socket.destroy();
      for (const queue of queues.values()) queue.dispose();
      for (const topic of topics.values()) topic.dispose();
      queues.clear();
      topics.clear();
      await listener.close();
    },
  };
  management?.on(
    'request',
    createManagementHandler({
      host: `127.0.0.1:${port}`,
      takeFault: () => faults.management.shift(),
      verify(token) {
        const grant = grantOf(keyring, token ?? '');
        if (grant.verdict !== 'ok') return grant.verdict;
        // The management API needs the Manage claim, to read entities as well as to change them.
        return grant.rights.has('Manage') ? 'ok' : 'unauthorized';
      },
      queues: () => [...queues.values()].map((queue) => managed(queue.path, queue)),
      topics: () =>
        [...topics.values()].map((topic) => ({
          name: topic.path,
          subscriptions: [...topic.subscriptions.values()].map((subscription) =>
            managed(subscription.path.slice(subscription.path.lastIndexOf('/') + 1), subscription),
          ),
        })),
      createQueue: peer.createQueue,
      deleteQueue: peer.deleteQueue,
      createTopic: peer.createTopic,
      deleteTopic: peer.deleteTopic,
      createSubscription: peer.createSubscription,
      deleteSubscription: peer.deleteSubscription,
    }),
  );
  return peer;
}
