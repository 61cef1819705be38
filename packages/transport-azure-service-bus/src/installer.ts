import {
  isServiceBusError,
  ServiceBusAdministrationClient,
  ServiceBusClient,
  type ServiceBusClientOptions,
} from '@azure/service-bus';
import { TransportError } from '@tidings/core';
import type {
  AdministrationOptions,
  ConnectionStringConnection,
  CredentialConnection,
} from './options.js';

/** Settings of a queue (or subscription) the transport asks for. */
export interface EntitySettings {
  /** Delete the entity after this long without use (instance queues). */
  readonly autoDeleteOnIdleMs?: number;
  readonly maxDeliveryCount?: number;
  /** Drop messages whose id was seen within this window. */
  readonly duplicateDetectionWindowMs?: number;
  /** Peek-lock duration (5 seconds to 5 minutes); the service's default when unset. */
  readonly lockDurationMs?: number;
  /** Subscriptions: move every message into this queue (auto-forwarding). */
  readonly forwardTo?: string;
}

/**
 * Creates the entities an endpoint needs. Every method is idempotent: an entity that exists
 * already is left as it is.
 */
export interface TopologyInstaller {
  ensureQueue(name: string, settings: EntitySettings): Promise<void>;
  ensureTopic(name: string): Promise<void>;
  ensureSubscription(topic: string, name: string, settings: EntitySettings): Promise<void>;
  deleteSubscription(topic: string, name: string): Promise<void>;
  close?(): Promise<void>;
}

/** ISO 8601 duration, as the administration API wants it. */
function duration(ms: number): string {
  return `PT${Math.max(1, Math.round(ms / 1000))}S`;
}

function alreadyExists(error: unknown): boolean {
  const e = error as { statusCode?: number; code?: string };
  return e?.statusCode === 409 || e?.code === 'MessagingEntityAlreadyExists';
}

function notFound(error: unknown): boolean {
  const e = error as { statusCode?: number; code?: string };
  return (
    e?.statusCode === 404 ||
    e?.code === 'MessagingEntityNotFound' ||
    // What the administration client's get* reports for the empty feed of a missing entity.
    e?.code === 'MessageEntityNotFoundError'
  );
}

/** The key or credential may not use the management API (no Manage claim, no Owner role). */
function notAllowed(error: unknown): boolean {
  const e = error as { statusCode?: number; code?: string };
  return e?.statusCode === 401 || e?.statusCode === 403 || e?.code === 'UnauthorizedAccess';
}

/** The namespace throttles management requests (many endpoints starting at once). */
function throttled(error: unknown): boolean {
  const e = error as { statusCode?: number; code?: string };
  return e?.statusCode === 429 || e?.statusCode === 503 || e?.code === 'ServiceBusy';
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The default installer: ServiceBusAdministrationClient. Creating entities needs the Manage claim
 * (or the Azure Service Bus Data Owner role). Without it the management API answers 401 even to
 * reads, so existence is checked over AMQP instead, with what Send or Listen allow: an endpoint
 * starts when its entities exist, and a missing one fails the start saying so. Throttling (429,
 * 503) is retried with jittered exponential backoff.
 */
export function createAdministrationInstaller(
  connection: ConnectionStringConnection | CredentialConnection,
  options: AdministrationOptions = {},
): TopologyInstaller {
  const clientOptions = options.agent !== undefined ? { agent: options.agent } : {};
  const admin =
    'connectionString' in connection
      ? new ServiceBusAdministrationClient(connection.connectionString, clientOptions)
      : new ServiceBusAdministrationClient(
          connection.fullyQualifiedNamespace,
          connection.credential as never,
          clientOptions,
        );
  const maxThrottleRetries = options.throttleRetries ?? 8;
  const firstDelayMs = options.throttleDelayMs ?? 1_000;
  /** Runs a management request, waiting out throttling: 1 s, 2 s, 4 s ... up to 30 s, jittered. */
  const unthrottled = async <T>(request: () => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await request();
      } catch (error) {
        if (!throttled(error) || attempt >= maxThrottleRetries) throw error;
        const ceiling = Math.min(30_000, firstDelayMs * 2 ** attempt);
        // Full jitter: endpoints throttled together do not come back together.
        await sleep(ceiling / 2 + Math.random() * (ceiling / 2));
      }
    }
  };
  const entityOptions = (settings: EntitySettings) => ({
    ...(settings.autoDeleteOnIdleMs !== undefined
      ? { autoDeleteOnIdle: duration(settings.autoDeleteOnIdleMs) }
      : {}),
    ...(settings.maxDeliveryCount !== undefined
      ? { maxDeliveryCount: settings.maxDeliveryCount }
      : {}),
    ...(settings.lockDurationMs !== undefined
      ? { lockDuration: duration(settings.lockDurationMs) }
      : {}),
    ...(settings.forwardTo !== undefined ? { forwardTo: settings.forwardTo } : {}),
  });

  /**
   * Whether an entity exists, asked over AMQP: attaching a link to a missing entity is refused
   * with not-found. A sender link (Send) for queues and topics, with a peek (Listen) as the
   * fallback for a queue; a peek for subscriptions. Only when the management API is not allowed.
   */
  const existsOverAmqp = async (
    what: string,
    probes: ReadonlyArray<(client: ServiceBusClient) => Promise<unknown>>,
  ): Promise<boolean> => {
    const amqpOptions: ServiceBusClientOptions = { retryOptions: { maxRetries: 1 } };
    const client =
      'connectionString' in connection
        ? new ServiceBusClient(connection.connectionString, amqpOptions)
        : new ServiceBusClient(
            connection.fullyQualifiedNamespace,
            connection.credential as never,
            amqpOptions,
          );
    try {
      let refused: unknown;
      for (const probe of probes) {
        try {
          await probe(client);
          return true;
        } catch (error) {
          if (isServiceBusError(error) && error.code === 'MessagingEntityNotFound') return false;
          if (!notAllowed(error)) throw error;
          refused = error;
        }
      }
      throw new TransportError(
        `Cannot tell whether ${what} exists: the key or credential has neither the Manage claim nor the Send or Listen right it would need.`,
        { cause: refused },
      );
    } finally {
      await client.close().catch(() => {});
    }
  };
  const missing = (what: string, cause: unknown) =>
    new TransportError(
      `${what} does not exist, and the key or credential may not create it (it needs the Manage claim, or the Azure Service Bus Data Owner role). Create it ahead of time, or grant the right.`,
      { cause },
    );

  /**
   * Leaves an existing entity as it is and creates a missing one. `get` failing with 401 means
   * "not allowed to look", not "missing" (the SDK's *Exists methods answer false to both).
   */
  const ensure = async (
    what: string,
    get: () => Promise<unknown>,
    make: () => Promise<unknown>,
    probes: ReadonlyArray<(client: ServiceBusClient) => Promise<unknown>>,
  ) => {
    try {
      await unthrottled(get);
      return;
    } catch (error) {
      if (notAllowed(error)) {
        if (await existsOverAmqp(what, probes)) return;
        throw missing(what, error);
      }
      if (!notFound(error)) throw error;
    }
    try {
      await unthrottled(make);
    } catch (error) {
      // Another instance created it between the check and the create.
      if (alreadyExists(error)) return;
      if (notAllowed(error)) throw missing(what, error);
      throw error;
    }
  };
  const sendProbe = (entity: string) => async (client: ServiceBusClient) => {
    // Creating a batch attaches the sender link (it reads the link's max message size).
    const sender = client.createSender(entity);
    try {
      await sender.createMessageBatch();
    } finally {
      await sender.close().catch(() => {});
    }
  };
  const peekProbe =
    (...path: [string] | [string, string]) =>
    async (client: ServiceBusClient) => {
      const receiver =
        path.length === 1 ? client.createReceiver(path[0]) : client.createReceiver(...path);
      try {
        await receiver.peekMessages(1);
      } finally {
        await receiver.close().catch(() => {});
      }
    };
  return {
    ensureQueue: (name, settings) =>
      ensure(
        `Queue '${name}'`,
        () => admin.getQueue(name),
        () =>
          admin.createQueue(name, {
            ...entityOptions(settings),
            ...(settings.duplicateDetectionWindowMs !== undefined
              ? {
                  requiresDuplicateDetection: true,
                  duplicateDetectionHistoryTimeWindow: duration(
                    settings.duplicateDetectionWindowMs,
                  ),
                }
              : {}),
          }),
        [sendProbe(name), peekProbe(name)],
      ),
    ensureTopic: (name) =>
      ensure(
        `Topic '${name}'`,
        () => admin.getTopic(name),
        () => admin.createTopic(name),
        [sendProbe(name)],
      ),
    ensureSubscription: (topic, name, settings) =>
      ensure(
        `Subscription '${name}' of topic '${topic}'`,
        () => admin.getSubscription(topic, name),
        () => admin.createSubscription(topic, name, entityOptions(settings)),
        [peekProbe(topic, name)],
      ),
    async deleteSubscription(topic, name) {
      try {
        await unthrottled(() => admin.deleteSubscription(topic, name));
      } catch (error) {
        if (!notFound(error)) throw error;
      }
    },
  };
}
