import { ServiceBusAdministrationClient } from '@azure/service-bus';
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
  return e?.statusCode === 404 || e?.code === 'MessagingEntityNotFound';
}

/** The default installer: ServiceBusAdministrationClient (needs the Manage claim on the namespace). */
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
  const create = async (exists: () => Promise<boolean>, make: () => Promise<unknown>) => {
    if (await exists()) return;
    try {
      await make();
    } catch (error) {
      // Another instance created it between the check and the create.
      if (!alreadyExists(error)) throw error;
    }
  };
  return {
    ensureQueue: (name, settings) =>
      create(
        () => admin.queueExists(name),
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
      ),
    ensureTopic: (name) =>
      create(
        () => admin.topicExists(name),
        () => admin.createTopic(name),
      ),
    ensureSubscription: (topic, name, settings) =>
      create(
        () => admin.subscriptionExists(topic, name),
        () => admin.createSubscription(topic, name, entityOptions(settings)),
      ),
    async deleteSubscription(topic, name) {
      try {
        await admin.deleteSubscription(topic, name);
      } catch (error) {
        if (!notFound(error)) throw error;
      }
    },
  };
}
