import { checkWholeNumber } from '../configuration/option-checks.js';
import { ConfigurationError } from '../errors.js';
import type { Instrumentation } from '../instrumentation/instrumentation.js';
import { createConsoleLogger, type Logger } from '../logging/logger.js';
import { checkQueueName } from '../messages/destination-name.js';
import {
  type OutboxOptions,
  type ResolvedOutboxOptions,
  resolveOutboxOptions,
} from '../persistence/outbox-options.js';
import { PERSISTENCE_SPI_VERSION, type Persistence } from '../persistence/persistence.js';
import type { FaultReplyDetail } from '../recoverability/fault-reply.js';
import {
  type RecoverabilityOptions,
  type ResolvedRecoverability,
  resolveRecoverability,
} from '../recoverability/recoverability.js';
import { createJsonSerializer } from '../serialization/json-serializer.js';
import type { Serializer } from '../serialization/serializer.js';
import { TRANSPORT_SPI_VERSION, type Transport } from '../transport/transport.js';
import { newId } from '../util.js';

export interface EndpointOptions {
  /** The endpoint's name; also the name of its shared input queue. */
  readonly name: string;
  readonly transport: Transport;
  /**
   * Identifies this instance among those sharing the endpoint's queue; its own queue, where its
   * replies arrive, is `<name>.<instanceId>`. Keep it stable across restarts to receive replies
   * that arrive while the instance is down.
   * @default a generated id, logged at start
   */
  readonly instanceId?: string;
  /**
   * No input queue: the endpoint can `send` and `publish`, but not receive (`handle`, `request`).
   * @default false
   */
  readonly sendOnly?: boolean;
  /** Message type name → destination endpoint, for `send` without `to`. */
  readonly routes?: Readonly<Record<string, string>>;
  /**
   * Messages handled at once from the input queue (events included). Replies arriving at the
   * instance queue get as many slots again, so handlers that await requests cannot hold every
   * slot their replies need.
   * @default 16
   */
  readonly concurrency?: number;
  readonly recoverability?: RecoverabilityOptions;
  /**
   * How long a request waits for its reply.
   * @default 30_000
   */
  readonly requestTimeoutMs?: number;
  /**
   * Requests awaiting a reply at once; further requests wait for a slot.
   * @default 10_000
   */
  readonly maxPendingRequests?: number;
  /**
   * How long `stop` lets in-flight handlers finish before abandoning their messages.
   * @default 30_000
   */
  readonly stopTimeoutMs?: number;
  /**
   * A reply nobody waits for and no handler takes: `discard` (with a warning, counted) or move it
   * to the error queue.
   * @default 'discard'
   */
  readonly unmatchedReplies?: 'discard' | 'error-queue';
  /**
   * When a message that carries a reply-to address is moved to the error queue (no handler, every
   * retry failed, unreadable), a fault reply tells the sender at once, so a `request` rejects with
   * `RemoteFailureError` instead of waiting for its timeout. `type`: the exception's type and code;
   * `type-and-message`: its message too (may show the requester internal details); `off`: none.
   * @default 'type'
   */
  readonly faultReplies?: FaultReplyDetail;
  /** @default console at level `info` */
  readonly logger?: Logger;
  /** @default JSON (`createJsonSerializer()`) */
  readonly serializer?: Serializer;
  /**
   * A store (e.g. `@tidings/persistence-postgres`): each message is handled in a transaction that
   * also records it (inbox) and what its handlers send (outbox); `endpoint.transaction` works.
   * See docs/outbox.md.
   * @default none: no transaction, no inbox, no outbox
   */
  readonly persistence?: Persistence<unknown>;
  /** Retention and the background dispatcher of the outbox; only with `persistence`. */
  readonly outbox?: OutboxOptions;
  /**
   * Tracing, metrics and log correlation, e.g. `createOpenTelemetry()` from
   * `@tidings/opentelemetry`. See docs/observability.md.
   * @default none: nothing is observed, at no cost
   */
  readonly instrumentation?: Instrumentation;
}

export const endpointDefaults = {
  concurrency: 16,
  requestTimeoutMs: 30_000,
  maxPendingRequests: 10_000,
  stopTimeoutMs: 30_000,
  unmatchedReplies: 'discard',
  faultReplies: 'type',
} as const;

export interface ResolvedEndpointOptions {
  readonly name: string;
  readonly transport: Transport;
  readonly instanceId: string | undefined;
  readonly instanceIdGenerated: boolean;
  readonly sendOnly: boolean;
  readonly routes: ReadonlyMap<string, string>;
  readonly concurrency: number;
  readonly recoverability: ResolvedRecoverability;
  readonly requestTimeoutMs: number;
  readonly maxPendingRequests: number;
  readonly stopTimeoutMs: number;
  readonly unmatchedReplies: 'discard' | 'error-queue';
  readonly faultReplies: FaultReplyDetail;
  readonly logger: Logger;
  readonly serializer: Serializer;
  readonly persistence: Persistence<unknown> | undefined;
  readonly outbox: ResolvedOutboxOptions;
  readonly instrumentation: Instrumentation | undefined;
}

export function resolveEndpointOptions(options: EndpointOptions): ResolvedEndpointOptions {
  if (options === null || typeof options !== 'object') {
    throw new ConfigurationError('createEndpoint needs an options object: { name, transport }.');
  }
  const name = checkQueueName('Endpoint name', options.name);
  const transport = options.transport;
  if (transport === undefined || typeof transport.openEndpoint !== 'function') {
    throw new ConfigurationError(
      `Endpoint '${name}' needs a transport, e.g. createInMemoryTransport() or a transport package's factory.`,
    );
  }
  if (transport.spiVersion !== TRANSPORT_SPI_VERSION) {
    throw new ConfigurationError(
      `Transport '${transport.name}' implements SPI version ${transport.spiVersion}; this @tidings/core speaks version ${TRANSPORT_SPI_VERSION}. Install matching versions.`,
    );
  }
  const sendOnly = options.sendOnly ?? false;
  let instanceId = options.instanceId;
  const instanceIdGenerated = instanceId === undefined && !sendOnly;
  if (instanceId !== undefined) checkQueueName('instanceId', instanceId);
  else if (!sendOnly) instanceId = newId().slice(0, 8);
  const routes = new Map<string, string>();
  for (const [messageType, destination] of Object.entries(options.routes ?? {})) {
    routes.set(messageType, checkQueueName(`The route for '${messageType}'`, destination));
  }
  return {
    name,
    transport,
    instanceId: sendOnly ? undefined : instanceId,
    instanceIdGenerated,
    sendOnly,
    routes,
    concurrency: checkWholeNumber(
      'concurrency',
      options.concurrency ?? endpointDefaults.concurrency,
    ),
    recoverability: resolveRecoverability(options.recoverability),
    requestTimeoutMs: checkWholeNumber(
      'requestTimeoutMs',
      options.requestTimeoutMs ?? endpointDefaults.requestTimeoutMs,
    ),
    maxPendingRequests: checkWholeNumber(
      'maxPendingRequests',
      options.maxPendingRequests ?? endpointDefaults.maxPendingRequests,
    ),
    stopTimeoutMs: checkWholeNumber(
      'stopTimeoutMs',
      options.stopTimeoutMs ?? endpointDefaults.stopTimeoutMs,
    ),
    unmatchedReplies: options.unmatchedReplies ?? endpointDefaults.unmatchedReplies,
    faultReplies: checkFaultReplies(options.faultReplies ?? endpointDefaults.faultReplies),
    logger: instrumentedLogger(
      options.instrumentation,
      options.logger ?? createConsoleLogger('info'),
    ),
    serializer: options.serializer ?? createJsonSerializer(),
    persistence: checkPersistence(options.persistence),
    outbox: resolveOutboxOptions(options.outbox),
    instrumentation: checkInstrumentation(options.instrumentation),
  };
}

function checkInstrumentation(instrumentation: Instrumentation | undefined) {
  if (instrumentation === undefined) return undefined;
  if (typeof instrumentation?.instrumentEndpoint !== 'function') {
    throw new ConfigurationError(
      '`instrumentation` must be an instrumentation, e.g. createOpenTelemetry() from @tidings/opentelemetry.',
    );
  }
  return instrumentation;
}

function instrumentedLogger(instrumentation: Instrumentation | undefined, logger: Logger): Logger {
  return instrumentation?.wrapLogger?.(logger) ?? logger;
}

function checkFaultReplies(value: FaultReplyDetail): FaultReplyDetail {
  if (value === 'off' || value === 'type' || value === 'type-and-message') return value;
  throw new ConfigurationError(
    `faultReplies must be 'off', 'type' or 'type-and-message', got ${JSON.stringify(value)}.`,
  );
}

function checkPersistence(persistence: Persistence<unknown> | undefined) {
  if (persistence === undefined) return undefined;
  if (typeof persistence?.open !== 'function') {
    throw new ConfigurationError(
      '`persistence` must be a persistence, e.g. createPostgresPersistence({ pool }) from @tidings/persistence-postgres.',
    );
  }
  if (persistence.spiVersion !== PERSISTENCE_SPI_VERSION) {
    throw new ConfigurationError(
      `Persistence '${persistence.name}' implements SPI version ${persistence.spiVersion}; this @tidings/core speaks version ${PERSISTENCE_SPI_VERSION}. Install matching versions.`,
    );
  }
  return persistence;
}
