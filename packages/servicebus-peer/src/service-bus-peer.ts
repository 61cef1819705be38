import { randomBytes } from 'node:crypto';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Server, Socket } from 'node:net';
import rhea, {
  type Connection,
  type Delivery,
  type EventContext,
  type Message,
  type Receiver,
  type Sender,
} from 'rhea';
import { peerCertificate } from './certificate.js';
import { type EntityOptions, MessageEntity, type StoredMessage } from './entities.js';
import { readJwt, signJwt } from './jwt.js';
import { propertyViolation, transferSize } from './limits.js';
import { createManagementHandler, formatDuration, type ManagedEntity } from './management.js';
import { amqpMessage, formatOf, internals, type Outcome } from './rhea-internals.js';
import { type PeerRight, readSasToken } from './sas.js';

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

/** A token credential (`TokenCredential` of @azure/core-auth) issuing the peer's JWTs. */
export interface PeerCredential {
  getToken(scopes: string | string[]): Promise<{ token: string; expiresOnTimestamp: number }>;
  /** Tokens issued so far: more than one shows the SDK renewed its claim. */
  readonly tokensIssued: number;
}

/** A shared access policy: a key name, its key and what it may do. */
export interface PeerKey {
  readonly name: string;
  readonly key: string;
  readonly rights: readonly PeerRight[];
}

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

export const serviceBusPeerDefaults = {
  port: 0,
  linkIdleTimeoutMs: 600_000,
  locksOnDetach: 'keep',
  maxMessageSizeBytes: 256 * 1024,
  keyName: 'RootManageSharedAccessKey',
  key: 'peer-key',
  management: true,
} as const;

/** Batch transfers use this message format (sdk/servicebus/service-bus/src/serviceBusMessageBatch.ts). */
const BATCH_FORMAT = 0x80013700;
const DEAD_LETTER_SUFFIX = '/$deadletterqueue';
const MANAGEMENT_SUFFIX = '/$management';

class Topic {
  readonly subscriptions = new Map<string, MessageEntity>();
  readonly scheduled = new Map<number, NodeJS.Timeout>();
  private nextSequence = 1;
  constructor(readonly path: string) {}
  enqueue(message: Message): boolean {
    for (const subscription of this.subscriptions.values()) subscription.enqueue({ ...message });
    return true;
  }
  schedule(message: Message, at: Date): number {
    const sequenceNumber = 1_000_000_000 + this.nextSequence++;
    const timer = setTimeout(
      () => {
        this.scheduled.delete(sequenceNumber);
        this.enqueue(message);
      },
      Math.max(0, at.getTime() - Date.now()),
    );
    this.scheduled.set(sequenceNumber, timer);
    return sequenceNumber;
  }
  cancelScheduled(sequenceNumber: number): void {
    clearTimeout(this.scheduled.get(sequenceNumber));
    this.scheduled.delete(sequenceNumber);
  }
  dispose(): void {
    for (const timer of this.scheduled.values()) clearTimeout(timer);
    for (const subscription of this.subscriptions.values()) subscription.dispose();
  }
}

type SendTarget = MessageEntity | Topic;

/** Entity paths are case-insensitive in Service Bus; clients may send the full `sb://host/path`. */
function normalise(address: string | undefined): string {
  let path = String(address ?? '');
  const scheme = path.indexOf('://');
  if (scheme >= 0) {
    const slash = path.indexOf('/', scheme + 3);
    path = slash >= 0 ? path.slice(slash + 1) : '';
  }
  return path.replace(/^\/+|\/+$/g, '').toLowerCase();
}

function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (Buffer.isBuffer(value) && value.length === 8) return Number(value.readBigInt64BE());
  return Number(value);
}

/**
 * A lock token from a $management request (an AMQP uuid, RFC byte order) as the delivery tag
 * it came from. Delivery tags carry the GUID in .NET byte order; the SDK swaps the first three
 * groups when it turns a tag into a lock token (sdk/servicebus/service-bus/src/util/utils.ts,
 * reorderLockToken), so the same swap maps it back.
 */
function tokenOf(value: unknown): string {
  const bytes = Buffer.isBuffer(value)
    ? Buffer.from(value)
    : Buffer.from(String(value).replace(/-/g, ''), 'hex');
  if (bytes.length !== 16) return '';
  return Buffer.concat([
    bytes.subarray(0, 4).reverse(),
    bytes.subarray(4, 6).reverse(),
    bytes.subarray(6, 8).reverse(),
    bytes.subarray(8),
  ]).toString('hex');
}

/**
 * Starts an AMQP 1.0 peer that plays Azure Service Bus well enough for @azure/service-bus 7.9
 * to send, receive, settle, schedule and manage locks against it. It is not Service Bus: see the
 * package README for what it cannot prove.
 */
export async function startServiceBusPeer(
  options: ServiceBusPeerOptions = {},
): Promise<ServiceBusPeer> {
  const settings = { ...serviceBusPeerDefaults, ...options };
  const keys = new Map([[settings.keyName, settings.key]]);
  const rightsOf = new Map<string, ReadonlySet<PeerRight>>([
    [settings.keyName, new Set<PeerRight>(['Manage', 'Send', 'Listen'])],
  ]);
  for (const policy of options.keys ?? []) {
    keys.set(policy.name, policy.key);
    const rights = new Set<PeerRight>(policy.rights);
    if (rights.has('Manage')) {
      rights.add('Send');
      rights.add('Listen');
    }
    rightsOf.set(policy.name, rights);
  }
  /**
   * Claims put on each connection through CBS: the entity path a token was signed for ('' for
   * the namespace), the rights of its key, and when it expires. A link is authorized by a claim
   * on its path or a parent of it (a namespace-wide token covers every entity).
   */
  interface Claim {
    readonly path: string;
    readonly rights: ReadonlySet<PeerRight>;
    readonly expiresAt: number;
  }
  const claims = new Map<Connection, Claim[]>();
  const jwtSecret = randomBytes(32);
  const identityRights = new Map<string, ReadonlySet<PeerRight>>();
  for (const identity of options.identities ?? []) {
    const rights = new Set<PeerRight>(identity.rights);
    if (rights.has('Manage')) {
      rights.add('Send');
      rights.add('Listen');
    }
    identityRights.set(identity.name, rights);
  }
  /**
   * What a token grants: a SAS token its key's rights on the entity (or namespace) it was signed
   * for; an Entra ID JWT its identity's rights on the whole namespace (role assignments at
   * namespace scope).
   */
  const grantOf = (
    token: string,
  ):
    | { verdict: 'ok'; path: string; rights: ReadonlySet<PeerRight>; expiresAt: number }
    | { verdict: 'invalid' | 'expired' } => {
    if (token.startsWith('SharedAccessSignature ')) {
      const sas = readSasToken(token, keys);
      if (sas.verdict !== 'ok') return { verdict: sas.verdict };
      return {
        verdict: 'ok',
        path: normalise(sas.resource),
        rights: rightsOf.get(sas.keyName as string) ?? new Set(),
        expiresAt: sas.expiresAt as number,
      };
    }
    const jwt = readJwt(token.replace(/^Bearer /, ''), jwtSecret);
    if (jwt.verdict !== 'ok') return { verdict: jwt.verdict };
    return {
      verdict: 'ok',
      path: '',
      rights: identityRights.get(jwt.identity as string) ?? new Set(),
      expiresAt: jwt.expiresAt as number,
    };
  };
  const authorized = (connection: Connection, address: string, right: PeerRight): boolean => {
    const path = normalise(address);
    const now = Date.now();
    return (claims.get(connection) ?? []).some(
      (claim) =>
        claim.expiresAt > now &&
        claim.rights.has(right) &&
        (claim.path === '' || path === claim.path || path.startsWith(`${claim.path}/`)),
    );
  };
  const expiredToken = (address: string) => ({
    condition: 'amqp:unauthorized-access',
    description: `The token for '${normalise(address)}' has expired and was not renewed.`,
  });
  const unauthorized = (address: string, right: PeerRight) => ({
    // What Service Bus answers an attach without the claim; the SDK maps it to UnauthorizedAccess.
    condition: 'amqp:unauthorized-access',
    description: `Unauthorized access. '${right}' claim(s) are required to perform this operation. Resource: '${normalise(address)}'.`,
  });
  const queues = new Map<string, MessageEntity>();
  const topics = new Map<string, Topic>();
  const sockets = new Set<Socket>();
  const consumerLinks = new Map<Connection, Map<Sender, MessageEntity>>();
  const replyLinks = new Map<Connection, Map<string, Sender>>();
  const deliveryLocks = new WeakMap<Delivery, { entity: MessageEntity; token: string }>();
  const counters = {
    tokensPut: 0,
    deliveries: 0,
    completed: 0,
    abandoned: 0,
    deadLettered: 0,
    scheduled: 0,
    duplicatesDropped: 0,
  };
  let failSettlements = 0;
  const managementFaults: Array<429 | 503> = [];
  const sendFaults: string[] = [];
  const disabled = new Set<string>();
  const entityDisabled = (address: string) => ({
    condition: 'com.microsoft:entity-disabled',
    description: `Messaging entity '${normalise(address)}' is currently disabled.`,
  });
  /** When each client link last moved a message or a settlement (idle links are detached). */
  const lastUse = new Map<Sender | Receiver, number>();
  /** The entity a link is on is disabled: the path or the queue or topic it belongs to. */
  const isDisabled = (address: string) => {
    const path = normalise(address);
    for (const entity of disabled) {
      if (path === entity || path.startsWith(`${entity}/`)) return true;
    }
    return false;
  };

  const deliver = (
    entity: MessageEntity,
    link: Sender,
    stored: StoredMessage,
    token: string,
  ): void => {
    const lockedUntil = entity.locks.get(token)?.lockedUntil ?? Date.now();
    // What a received message carries: sdk/servicebus/service-bus/src/serviceBusMessage.ts
    // (fromRheaMessage) reads the lock token from the delivery tag (16 bytes, a GUID),
    // deliveryCount from the header's delivery_count, and sequence number, enqueued time and
    // locked-until from these message annotations.
    const message: Message = {
      ...stored.message,
      delivery_count: stored.deliveryCount,
      message_annotations: {
        ...stored.message.message_annotations,
        'x-opt-sequence-number': rhea.types.wrap_long(stored.sequenceNumber),
        'x-opt-enqueued-time': stored.enqueuedAt,
        'x-opt-locked-until': new Date(lockedUntil),
      },
    };
    const delivery = link.send(message, Buffer.from(token, 'hex'));
    lastUse.set(link, Date.now());
    deliveryLocks.set(delivery, { entity, token });
    counters.deliveries++;
  };

  const newEntity = (path: string, entityOptions: EntityOptions): MessageEntity => {
    const forwardTo = entityOptions.forwardTo;
    const entity = new MessageEntity(
      path,
      entityOptions,
      (consumer, stored, token) => deliver(entity, consumer.link, stored, token),
      forwardTo === undefined
        ? undefined
        : (message) => {
            // Auto-forwarding (forwardTo) moves the message into the target queue as a new send.
            const target = queues.get(normalise(forwardTo));
            if (target === undefined) entity.deadLetter?.enqueue(message);
            else target.enqueue(message);
          },
    );
    entity.deadLetter = new MessageEntity(`${path}/$DeadLetterQueue`, {}, (consumer, s, t) =>
      deliver(entity.deadLetter as MessageEntity, consumer.link, s, t),
    );
    return entity;
  };

  /** Where a client may receive from: a queue, a subscription, or either's dead-letter queue. */
  const receivable = (address: string): MessageEntity | undefined => {
    let path = normalise(address);
    const deadLetter = path.endsWith(DEAD_LETTER_SUFFIX);
    if (deadLetter) path = path.slice(0, -DEAD_LETTER_SUFFIX.length);
    let entity = queues.get(path);
    const parts = path.split('/');
    if (entity === undefined && parts.length === 3 && parts[1] === 'subscriptions') {
      entity = topics.get(parts[0] as string)?.subscriptions.get(parts[2] as string);
    }
    return deadLetter ? entity?.deadLetter : entity;
  };

  const sendable = (address: string): SendTarget | undefined => {
    const path = normalise(address);
    return queues.get(path) ?? topics.get(path);
  };

  const notFound = (address: string) => ({
    // Service Bus refuses the attach with amqp:not-found; the SDK maps it to
    // MessagingEntityNotFound (sdk/servicebus/service-bus/src/serviceBusError.ts).
    condition: 'amqp:not-found',
    description: `The messaging entity '${normalise(address)}' could not be found.`,
  });

  const reply = (
    connection: Connection,
    request: Message,
    status: number,
    body: unknown,
    error?: { condition: string; description: string },
  ): void => {
    const links = replyLinks.get(connection);
    const link = links?.get(String(request.reply_to)) ?? links?.get(normalise(request.reply_to));
    if (link === undefined || !link.is_open()) return;
    // Management responses: statusCode / statusDescription / error-condition application
    // properties, correlated by the request's message id (@azure/core-amqp
    // src/requestResponseLink.ts, onMessageReceived and getCodeDescriptionAndError).
    link.send({
      correlation_id: request.message_id as string,
      application_properties: {
        statusCode: status,
        statusDescription: error?.description ?? (status < 300 ? 'OK' : 'Error'),
        ...(error ? { 'error-condition': error.condition } : {}),
      },
      body,
    });
  };

  const handleCbs = (connection: Connection, request: Message): void => {
    // CBS put-token (@azure/core-amqp src/cbs.ts, negotiateClaim): answer on the link named by
    // reply_to with status-code 202 and the request's message id as correlation id.
    const token = typeof request.body === 'string' ? request.body : '';
    const grant = grantOf(token);
    const verdict = grant.verdict;
    if (grant.verdict === 'ok') {
      counters.tokensPut++;
      let held = claims.get(connection);
      if (held === undefined) {
        held = [];
        claims.set(connection, held);
      }
      // A renewed token replaces the one for the same audience.
      const index = held.findIndex((claim) => claim.path === grant.path);
      if (index >= 0) held.splice(index, 1);
      held.push({ path: grant.path, rights: grant.rights, expiresAt: grant.expiresAt });
    }
    const links = replyLinks.get(connection);
    const link = links?.get(String(request.reply_to));
    if (link === undefined) return;
    link.send({
      correlation_id: request.message_id as string,
      body: undefined,
      application_properties:
        verdict === 'ok'
          ? { 'status-code': 202, 'status-description': 'Accepted' }
          : {
              'status-code': 401,
              'status-description': `InvalidSignature: the token ${verdict === 'expired' ? 'has expired' : 'has an invalid signature'}.`,
              'error-condition': 'amqp:unauthorized-access',
            },
    });
  };

  const handleManagement = (connection: Connection, path: string, request: Message): void => {
    const operation = String(request.application_properties?.operation ?? '');
    const body = (request.body ?? {}) as Record<string, unknown>;
    const lockLost = {
      condition: 'com.microsoft:message-lock-lost',
      description:
        'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.',
    };
    // Scheduling sends; the rest (renew, peek, settle by lock token) receives.
    const right: PeerRight =
      operation === 'com.microsoft:schedule-message' ||
      operation === 'com.microsoft:cancel-scheduled-message'
        ? 'Send'
        : 'Listen';
    if (!authorized(connection, `${path}${MANAGEMENT_SUFFIX}`, right)) {
      reply(connection, request, 401, undefined, unauthorized(path, right));
      return;
    }
    const target = sendable(path);
    const source = receivable(path);
    if (target === undefined && source === undefined) {
      reply(connection, request, 404, undefined, {
        condition: 'com.microsoft:entity-not-found',
        description: notFound(path).description,
      });
      return;
    }
    // Operation names and body keys: @azure/core-amqp src/util/constants.ts and
    // sdk/servicebus/service-bus/src/core/managementClient.ts.
    switch (operation) {
      case 'com.microsoft:schedule-message': {
        const entries = (body.messages ?? []) as Array<Record<string, unknown>>;
        const sequenceNumbers = entries.map((entry) => {
          const message = amqpMessage.decode(entry.message as Buffer);
          const at = message.message_annotations?.['x-opt-scheduled-enqueue-time'];
          counters.scheduled++;
          return (target as SendTarget).schedule(
            message,
            at instanceof Date ? at : new Date(Number(at ?? Date.now())),
          );
        });
        reply(connection, request, 200, {
          'sequence-numbers': rhea.types.wrap_array(
            sequenceNumbers.map((n) => {
              const buffer = Buffer.alloc(8);
              buffer.writeBigInt64BE(BigInt(n));
              return buffer;
            }),
            0x81,
            undefined,
          ),
        });
        return;
      }
      case 'com.microsoft:cancel-scheduled-message': {
        for (const n of (body['sequence-numbers'] ?? []) as unknown[]) {
          target?.cancelScheduled(toNumber(n));
        }
        reply(connection, request, 200, {});
        return;
      }
      case 'com.microsoft:renew-lock': {
        const expirations: Date[] = [];
        for (const token of (body['lock-tokens'] ?? []) as unknown[]) {
          const until = source?.renew(tokenOf(token));
          if (until === undefined) {
            reply(connection, request, 410, undefined, lockLost);
            return;
          }
          expirations.push(until);
        }
        reply(connection, request, 200, { expirations });
        return;
      }
      case 'com.microsoft:peek-message': {
        const from = toNumber(body['from-sequence-number'] ?? 0);
        const count = toNumber(body['message-count'] ?? 1);
        const found = source?.peek(from, count) ?? [];
        if (found.length === 0) {
          reply(connection, request, 204, undefined);
          return;
        }
        reply(connection, request, 200, {
          messages: found.map((stored) => ({
            message: amqpMessage.encode({
              ...stored.message,
              delivery_count: stored.deliveryCount,
              message_annotations: {
                ...stored.message.message_annotations,
                'x-opt-sequence-number': rhea.types.wrap_long(stored.sequenceNumber),
                'x-opt-enqueued-time': stored.enqueuedAt,
              },
            }),
          })),
        });
        return;
      }
      case 'com.microsoft:update-disposition': {
        // Settlement by lock token, used when the receive link is gone
        // (sdk/servicebus/service-bus/src/receivers/receiverCommon.ts, settleMessageOperation).
        const status = String(body['disposition-status'] ?? '');
        const outcome =
          status === 'completed'
            ? 'complete'
            : status === 'abandoned'
              ? 'abandon'
              : status === 'suspended'
                ? 'deadletter'
                : 'defer';
        for (const token of (body['lock-tokens'] ?? []) as unknown[]) {
          if (failSettlements > 0 || source === undefined) {
            if (failSettlements > 0) failSettlements--;
            reply(connection, request, 410, undefined, lockLost);
            return;
          }
          const done = source.unlock(tokenOf(token), outcome, {
            ...(body['deadletter-reason'] !== undefined
              ? { reason: String(body['deadletter-reason']) }
              : {}),
            ...(body['deadletter-description'] !== undefined
              ? { description: String(body['deadletter-description']) }
              : {}),
          });
          if (!done) {
            reply(connection, request, 410, undefined, lockLost);
            return;
          }
          count(outcome);
        }
        reply(connection, request, 200, {});
        return;
      }
      default:
        reply(connection, request, 501, undefined, {
          condition: 'amqp:not-implemented',
          description: `The peer does not implement '${operation}'.`,
        });
    }
  };

  const count = (outcome: string): void => {
    if (outcome === 'complete') counters.completed++;
    else if (outcome === 'deadletter') counters.deadLettered++;
    else if (outcome === 'abandon' || outcome === 'release') counters.abandoned++;
  };

  /** Decodes a batch transfer: an envelope whose data sections are each an encoded message. */
  const decodeTransfer = (context: EventContext): Message[] => {
    const raw = context.message as unknown;
    if (formatOf(context) !== BATCH_FORMAT) {
      return [Buffer.isBuffer(raw) ? amqpMessage.decode(raw) : (raw as Message)];
    }
    // rhea hands non-zero formats over undecoded (rhea lib/session.js, Incoming.on_transfer); the
    // SDK builds the envelope in sdk/servicebus/service-bus/src/serviceBusMessageBatch.ts.
    const envelope = amqpMessage.decode(raw as Buffer);
    const section = envelope.body as { content: Buffer | Buffer[]; multiple?: boolean };
    const parts = section.multiple ? (section.content as Buffer[]) : [section.content as Buffer];
    return parts.map((part) => amqpMessage.decode(part));
  };

  const accept = (address: string, message: Message): void => {
    const target = sendable(address);
    if (target === undefined) return;
    // The SDK's lock renewer and settlement logs key on message_id; Service Bus always has one.
    if (message.message_id === undefined || message.message_id === null) {
      message.message_id = rhea.generate_uuid();
    }
    const at = message.message_annotations?.['x-opt-scheduled-enqueue-time'];
    if (at instanceof Date && at.getTime() > Date.now()) {
      // scheduledEnqueueTimeUtc on a plain send (sdk/servicebus/service-bus/src/serviceBusMessage.ts,
      // toRheaMessage) schedules the message like the $management schedule request does.
      counters.scheduled++;
      target.schedule(message, at);
      return;
    }
    if (!target.enqueue(message)) counters.duplicatesDropped++;
  };

  // Transfers are accepted or refused by the 'message' handler, after the limits are checked.
  const container = rhea.create_container({ id: 'servicebus-peer', autoaccept: false } as never);
  /** Links clients send on, by the entity they send to (for `senderCount`). */
  const inboundLinks = new Map<Receiver, string>();

  container.on('receiver_open', (context: EventContext) => {
    // The client sends on this link: to an entity, to $cbs or to an entity's $management.
    const link = context.receiver as Receiver;
    const address = String(internals(link).remote.attach?.target?.address ?? '');
    link.set_target({ address });
    // Echo the client's terminus: a null one would mean the attach was refused (AMQP 1.0, 2.6.3).
    link.set_source((internals(link).remote.attach?.source ?? {}) as { address: string });
    // Senders read the batch limit from the attach's max_message_size
    // (sdk/servicebus/service-bus/src/core/messageSender.ts, getMaxMessageSize).
    (internals(link).local.attach as { max_message_size?: unknown }).max_message_size =
      settings.maxMessageSizeBytes;
    const path = normalise(address);
    if (path === '$cbs') return;
    if (path.endsWith(MANAGEMENT_SUFFIX)) return;
    if (!authorized(context.connection, address, 'Send')) link.close(unauthorized(address, 'Send'));
    else if (sendable(address) === undefined) link.close(notFound(address));
    else if (isDisabled(address)) link.close(entityDisabled(address));
    else {
      inboundLinks.set(link, path);
      lastUse.set(link, Date.now());
    }
  });
  container.on('receiver_close', (context: EventContext) => {
    inboundLinks.delete(context.receiver as Receiver);
    lastUse.delete(context.receiver as Receiver);
  });

  container.on('sender_open', (context: EventContext) => {
    // The client receives on this link: from an entity, or replies for $cbs / $management.
    const link = context.sender as Sender;
    const connection = context.connection;
    const source = internals(link).remote.attach?.source;
    const target = internals(link).remote.attach?.target;
    link.set_source((source ?? {}) as { address: string });
    link.set_target((target ?? {}) as { address: string });
    const address = String(source?.address ?? '');
    const path = normalise(address);
    if (path === '$cbs' || path.endsWith(MANAGEMENT_SUFFIX)) {
      let links = replyLinks.get(connection);
      if (links === undefined) {
        links = new Map();
        replyLinks.set(connection, links);
      }
      links.set(link.name, link);
      if (target?.address) links.set(String(target.address), link);
      return;
    }
    if (!authorized(connection, address, 'Listen')) {
      link.close(unauthorized(address, 'Listen'));
      return;
    }
    const entity = receivable(address);
    if (entity === undefined) {
      link.close(notFound(address));
      return;
    }
    if (isDisabled(address)) {
      link.close(entityDisabled(address));
      return;
    }
    lastUse.set(link, Date.now());
    let links = consumerLinks.get(connection);
    if (links === undefined) {
      links = new Map();
      consumerLinks.set(connection, links);
    }
    links.set(link, entity);
    entity.addConsumer({ link });
  });

  const entityOfLink = (context: EventContext): MessageEntity | undefined =>
    consumerLinks.get(context.connection)?.get(context.sender as Sender);

  container.on('sendable', (context: EventContext) => entityOfLink(context)?.pump());

  container.on('sender_draining', (context: EventContext) => {
    // A drain asks for what is there now and then the credit back (receiveMessages' batching
    // receiver drains at the end of its wait: sdk/servicebus/service-bus/src/core/batchingReceiver.ts).
    entityOfLink(context)?.pump();
    // Synchronously, inside rhea's frame handling, so the answering flow goes out with it.
    (context.sender as Sender).set_drained(true);
  });

  container.on('message', (context: EventContext) => {
    const link = context.receiver as Receiver;
    const address = String(internals(link).remote.attach?.target?.address ?? '');
    const path = normalise(address);
    const delivery = context.delivery as Delivery;
    if (path === '$cbs') {
      handleCbs(context.connection, context.message as Message);
      delivery.accept();
      return;
    }
    if (path.endsWith(MANAGEMENT_SUFFIX)) {
      handleManagement(
        context.connection,
        path.slice(0, -MANAGEMENT_SUFFIX.length),
        context.message as Message,
      );
      delivery.accept();
      return;
    }
    lastUse.set(link, Date.now());
    const fault = sendFaults.shift();
    if (fault !== undefined) {
      delivery.reject({
        condition: fault,
        description:
          fault === 'com.microsoft:server-busy'
            ? 'The request was terminated because the entity is being throttled. Please wait 2 seconds and try again. (injected by the test peer)'
            : 'The maximum entity size has been reached or exceeded. (injected by the test peer)',
      });
      return;
    }
    if (isDisabled(address)) {
      delivery.reject(entityDisabled(address));
      return;
    }
    const batch =
      formatOf(context) === BATCH_FORMAT ? (context.message as unknown as Buffer) : undefined;
    const messages = decodeTransfer(context);
    // Service Bus refuses a transfer above the max_message_size it advertised (the SDK sizes
    // batches from it but does not check a single send) and properties above its limits; the
    // sender sees the rejection as the send's error.
    const limit = settings.maxMessageSizeBytes;
    const size = batch?.length ?? transferSize(messages[0] as Message, limit);
    if (size > limit) {
      delivery.reject({
        condition: 'amqp:link:message-size-exceeded',
        description: `The message is ${size} bytes; the entity accepts at most ${limit}.`,
      });
      return;
    }
    for (const message of messages) {
      const violation = propertyViolation(message);
      if (violation !== undefined) {
        delivery.reject({
          condition: 'com.microsoft:argument-out-of-range',
          description: violation,
        });
        return;
      }
    }
    for (const message of messages) accept(address, message);
    delivery.accept();
  });

  /**
   * Dispositions from a receiver in peek-lock mode. The SDK settles by accepted (complete),
   * modified with undeliverable_here false (abandon) or true (defer), and rejected with
   * com.microsoft:dead-letter (sdk/servicebus/service-bus/src/core/messageReceiver.ts,
   * settleMessage), then waits for the peer to settle with a state that carries no error
   * (src/core/shared.ts, onMessageSettled).
   */
  const settle = (
    context: EventContext,
    kind: 'accepted' | 'released' | 'modified' | 'rejected',
  ) => {
    const delivery = context.delivery as Delivery;
    lastUse.set(context.sender as Sender, Date.now());
    const finish = (state: Outcome) => {
      delivery.update(true, state as never);
      // With rcv_settle_mode second the receiver settles only after this answer and says nothing
      // more; rhea frees a delivery once both sides settled, and stops sending when 2048 wait
      // (rhea lib/session.js, Outgoing.process). The disposition above is already queued.
      (delivery as unknown as { remote_settled: boolean }).remote_settled = true;
    };
    const lock = deliveryLocks.get(delivery);
    if (lock === undefined) {
      finish(amqpMessage.accepted().described());
      return;
    }
    deliveryLocks.delete(delivery);
    const state = delivery.remote_state as
      | { undeliverable_here?: boolean; error?: { info?: Record<string, unknown> } }
      | undefined;
    if (failSettlements > 0) {
      failSettlements--;
      lock.entity.unlock(lock.token, 'abandon');
      finish(
        amqpMessage
          .rejected({
            error: {
              condition: 'com.microsoft:message-lock-lost',
              description: 'The lock supplied is invalid (injected by the test peer).',
            },
          })
          .described(),
      );
      return;
    }
    const outcome =
      kind === 'accepted'
        ? 'complete'
        : kind === 'released'
          ? 'release'
          : kind === 'rejected'
            ? 'deadletter'
            : state?.undeliverable_here
              ? 'defer'
              : 'abandon';
    const info = state?.error?.info ?? {};
    const done = lock.entity.unlock(lock.token, outcome, {
      ...(info.DeadLetterReason !== undefined ? { reason: String(info.DeadLetterReason) } : {}),
      ...(info.DeadLetterErrorDescription !== undefined
        ? { description: String(info.DeadLetterErrorDescription) }
        : {}),
    });
    if (!done) {
      finish(
        amqpMessage
          .rejected({
            error: {
              condition: 'com.microsoft:message-lock-lost',
              description: 'The lock supplied is invalid: it expired or the link was closed.',
            },
          })
          .described(),
      );
      return;
    }
    count(outcome);
    finish(amqpMessage.accepted().described());
  };
  container.on('accepted', (context: EventContext) => settle(context, 'accepted'));
  container.on('released', (context: EventContext) => settle(context, 'released'));
  container.on('modified', (context: EventContext) => settle(context, 'modified'));
  container.on('rejected', (context: EventContext) => settle(context, 'rejected'));

  const forget = (connection: Connection, link?: Sender): void => {
    if (link === undefined) {
      for (const inbound of inboundLinks.keys()) {
        if (inbound.connection === connection) inboundLinks.delete(inbound);
      }
    }
    const links = consumerLinks.get(connection);
    if (links === undefined) return;
    for (const [sender, entity] of [...links]) {
      if (link !== undefined && sender !== link) continue;
      links.delete(sender);
      lastUse.delete(sender);
      entity.removeConsumer(sender, settings.locksOnDetach === 'release');
    }
    if (link === undefined) {
      consumerLinks.delete(connection);
      replyLinks.delete(connection);
      claims.delete(connection);
    }
  };
  container.on('sender_close', (context: EventContext) =>
    forget(context.connection, context.sender as Sender),
  );
  container.on('disconnected', (context: EventContext) => forget(context.connection));
  container.on('connection_close', (context: EventContext) => forget(context.connection));
  // Errors on one client's connection must not take the peer down.
  container.on('error', () => {});
  container.on('connection_error', () => {});
  container.on('sender_error', () => {});
  container.on('receiver_error', () => {});
  container.on('session_error', () => {});

  const certificate = settings.management ? await peerCertificate() : undefined;
  const server = container.listen({
    port: settings.port,
    host: '127.0.0.1',
    treat_modified_as_released: false,
  } as never) as unknown as Server;
  const acceptAmqp = (socket: Socket) => {
    for (const listener of rheaAccept) listener.call(server, socket);
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => {
      sockets.delete(socket);
      // rhea only notices 'end' and 'error'; a socket this side destroyed emits neither.
      for (const connection of new Set([...consumerLinks.keys(), ...replyLinks.keys()])) {
        if ((connection as unknown as { socket?: Socket }).socket === socket) forget(connection);
      }
    });
  };
  // rhea's listen adds the 'connection' handler that accepts AMQP; the peer decides first.
  const rheaAccept = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  /** HTTPS sockets and those not yet sniffed: closed with the peer, not counted as connections. */
  const otherSockets = new Set<Socket>();
  const management =
    certificate === undefined
      ? undefined
      : createHttpsServer({ cert: certificate.cert, key: certificate.key });
  if (management === undefined) {
    server.on('connection', acceptAmqp);
  } else {
    // The SDK's administration client talks HTTPS to the connection string's host and port,
    // where its AMQP client talks plain AMQP (UseDevelopmentEmulator): one port serves both.
    // An AMQP client speaks first (its protocol header, 'A'), so is a TLS client (a handshake
    // record, 0x16): the first byte tells them apart without a round trip.
    server.on('connection', (socket: Socket) => {
      // Until a protocol owns the socket, a reset must not become an unhandled 'error'.
      const ignore = () => {};
      socket.on('error', ignore);
      otherSockets.add(socket);
      socket.once('close', () => otherSockets.delete(socket));
      socket.once('data', (first: Buffer) => {
        socket.pause();
        socket.unshift(first);
        if (first[0] === 0x16) {
          // The TLS socket reads what is buffered itself (node's _tls_wrap initRead); resuming
          // here would emit that handshake to no one.
          management.emit('connection', socket);
        } else {
          otherSockets.delete(socket);
          socket.off('error', ignore);
          acceptAmqp(socket);
          // pause() above stops a later 'data' listener (rhea's) from resuming the socket.
          socket.resume();
        }
      });
    });
  }
  await new Promise<void>((resolve, reject) => {
    if (server.listening) resolve();
    else {
      server.once('listening', () => resolve());
      server.once('error', reject);
    }
  });
  const port = (server.address() as AddressInfo).port;

  const sweep = setInterval(
    () => {
      const now = Date.now();
      const all = [...queues.values()];
      for (const topic of topics.values()) all.push(...topic.subscriptions.values());
      for (const entity of all) {
        entity.expireLocks(now);
        entity.deadLetter?.expireLocks(now);
      }
      // Service Bus counts a queue idle without sends, receives or settlements, even with a
      // receiver attached that gets nothing; deleting it detaches such receivers with not-found.
      for (const queue of [...queues.values()]) {
        const idle = queue.options.autoDeleteOnIdleMs;
        if (idle !== undefined && now - queue.lastActivity > idle) peer.deleteQueue(queue.path);
      }
      // A link whose claim expired without a renewal is detached, as Service Bus detaches it.
      for (const [connection, links] of consumerLinks) {
        for (const link of [...links.keys()]) {
          const address = String(internals(link).remote.attach?.source?.address ?? '');
          if (authorized(connection, address, 'Listen')) continue;
          link.close(expiredToken(address));
          forget(connection, link);
        }
      }
      for (const [link, path] of [...inboundLinks]) {
        if (authorized(link.connection, path, 'Send')) continue;
        link.close(expiredToken(path));
        inboundLinks.delete(link);
      }
      // Links idle for linkIdleTimeoutMs are detached, as Service Bus does after 10 minutes; the
      // description is the service's.
      for (const [link, at] of [...lastUse]) {
        if (now - at <= settings.linkIdleTimeoutMs) continue;
        lastUse.delete(link);
        if (!link.is_open()) continue;
        const consumer = link.is_sender();
        link.close({
          condition: 'amqp:link:detach-forced',
          description: `The link '${link.name}' is force detached. Code: ${consumer ? 'consumer' : 'publisher'}. Details: ${consumer ? 'AmqpMessageConsumer' : 'AmqpMessagePublisher'}.IdleTimerExpired: Idle timeout: ${formatDuration(settings.linkIdleTimeoutMs)}.`,
        });
        if (consumer) forget(link.connection, link as Sender);
        else inboundLinks.delete(link as Receiver);
      }
    },
    Math.min(1000, Math.max(50, Math.floor(settings.linkIdleTimeoutMs / 4))),
  );
  sweep.unref();

  const entityAt = (path: string): MessageEntity | undefined => receivable(path);
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
    credentialFor(identity, credentialOptions = {}) {
      if (!identityRights.has(identity)) {
        throw new Error(`The peer has no identity named '${identity}'.`);
      }
      const lifetimeMs = credentialOptions.lifetimeMs ?? 3_600_000;
      const tokenLifetimeMs = credentialOptions.tokenLifetimeMs ?? lifetimeMs;
      let issued = 0;
      return {
        get tokensIssued() {
          return issued;
        },
        async getToken() {
          issued++;
          const expiresOnTimestamp = Date.now() + lifetimeMs;
          return {
            token: signJwt(
              { oid: identity, exp: Math.floor((Date.now() + tokenLifetimeMs) / 1000) },
              jwtSecret,
            ),
            expiresOnTimestamp,
          };
        },
      };
    },
    connectionStringFor(keyName) {
      const key = keys.get(keyName);
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
      if (!queues.has(path)) queues.set(path, newEntity(name, entityOptions));
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
          forget(connection, link);
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
        parent.subscriptions.set(key, newEntity(`${topic}/Subscriptions/${name}`, entityOptions));
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
      const target = sendable(path);
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
          forget(connection, link);
          detached++;
        }
      }
      return detached;
    },
    failNextSettlements(n = 1) {
      failSettlements += n;
    },
    throttleManagement(count, status = 429) {
      for (let i = 0; i < count; i++) managementFaults.push(status);
    },
    refuseNextSends(count, condition) {
      for (let i = 0; i < count; i++) sendFaults.push(condition);
    },
    disableEntity(path) {
      const disabledPath = normalise(path);
      disabled.add(disabledPath);
      for (const [connection, links] of consumerLinks) {
        for (const [link, entity] of [...links]) {
          const linked = normalise(entity.path);
          if (linked !== disabledPath && !linked.startsWith(`${disabledPath}/`)) continue;
          link.close(entityDisabled(linked));
          forget(connection, link);
        }
      }
      for (const [link, linked] of [...inboundLinks]) {
        if (linked !== disabledPath) continue;
        link.close(entityDisabled(linked));
        inboundLinks.delete(link);
      }
    },
    enableEntity(path) {
      disabled.delete(normalise(path));
    },
    async close() {
      clearInterval(sweep);
      for (const socket of sockets) socket.destroy();
      for (const queue of queues.values()) queue.dispose();
      for (const topic of topics.values()) topic.dispose();
      queues.clear();
      topics.clear();
      for (const socket of otherSockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  management?.on(
    'request',
    createManagementHandler({
      host: `127.0.0.1:${port}`,
      takeFault: () => managementFaults.shift(),
      verify(token) {
        const grant = grantOf(token ?? '');
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
