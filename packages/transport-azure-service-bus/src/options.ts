import type { Agent } from 'node:http';
import { ConfigurationError, checkWholeNumber } from '@tidings/core';
import { checkTimerMs } from '@tidings/core/transport';
import { createAdministrationInstaller, type TopologyInstaller } from './installer.js';
import { checkServiceRange, serviceBusLimits } from './limits.js';

/**
 * A Microsoft Entra ID credential, e.g. `new DefaultAzureCredential()` from `@azure/identity`.
 * Declared structurally so this package's API does not expose the SDK's types.
 */
export interface AzureTokenCredential {
  getToken(
    scopes: string | string[],
    options?: object,
  ): Promise<{ token: string; expiresOnTimestamp: number } | null>;
}

/** Connect with a connection string (SAS key), e.g. from the portal's "Shared access policies". */
export interface ConnectionStringConnection {
  readonly connectionString: string;
}

/** Connect with Entra ID: the namespace host name and a credential. */
export interface CredentialConnection {
  /** e.g. `my-namespace.servicebus.windows.net` */
  readonly fullyQualifiedNamespace: string;
  readonly credential: AzureTokenCredential;
}

/**
 * How the default installer reaches the namespace's management endpoint (HTTPS). The AMQP
 * connection does not use these.
 */
export interface AdministrationOptions {
  /**
   * The agent for management requests, e.g. `new https.Agent({ ca })` to trust a private CA for
   * this client only, a client certificate, or a proxy agent.
   * @default the SDK's own keep-alive agent
   */
  readonly agent?: Agent;
  /**
   * Retries of a management request the namespace throttles (429, 503), on top of the SDK's own:
   * many endpoints starting at once can be throttled for a while.
   * @default 8
   */
  readonly throttleRetries?: number;
  /**
   * First wait before such a retry; it doubles up to 30 s, jittered.
   * @default 1_000
   */
  readonly throttleDelayMs?: number;
}

export interface AzureServiceBusTransportSettings {
  /**
   * Creates queues, topics and subscriptions. The default uses ServiceBusAdministrationClient
   * (needs the Manage claim); pass your own to create topology elsewhere (IaC) or in tests.
   * @default createAdministrationInstaller(connection, administration)
   */
  readonly installer?: TopologyInstaller;
  /** Options of the default installer's management client; not allowed with `installer`. */
  readonly administration?: AdministrationOptions;
  /**
   * Largest message accepted, body plus headers, in bytes. Standard tier allows 256 KiB;
   * Premium up to 100 MiB (set the entity's limit too); more is refused at configuration.
   * @default 262_144
   */
  readonly maxMessageSizeBytes?: number;
  /**
   * Idle time after which Service Bus deletes an instance queue (replies to one instance).
   * Service Bus's minimum is 5 minutes; less is refused at configuration.
   * @default 3_600_000 (1 hour)
   */
  readonly instanceQueueAutoDeleteOnIdleMs?: number;
  /**
   * Deliveries after which Service Bus dead-letters a message on queues this transport creates.
   * Core's recoverability decides retries; this only bounds abandon loops (crashes, shutdowns).
   * @default 10
   */
  readonly maxDeliveryCount?: number;
  /**
   * Duplicate detection window on queues this transport creates (by message id); off when unset.
   * Turns the at-least-once redelivery of an already-sent message into effectively-once.
   * Service Bus allows 20 seconds to 7 days.
   * @default undefined
   */
  readonly duplicateDetectionWindowMs?: number;
  /**
   * Peek-lock duration of the queues this transport creates; the service's default (1 minute)
   * when unset. Service Bus allows 5 seconds to 5 minutes.
   * @default undefined
   */
  readonly lockDurationMs?: number;
  /**
   * How long the SDK keeps renewing a message's lock while its handler runs.
   * @default 300_000 (5 minutes)
   */
  readonly maxAutoLockRenewalDurationMs?: number;
  /**
   * Timeout of one SDK operation (send, settle, link open); after it the SDK retries.
   * @default 30_000
   */
  readonly operationTimeoutMs?: number;
  /**
   * Retries of a failed SDK operation before it reaches Tidings as an error.
   * @default 3
   */
  readonly maxRetries?: number;
  /**
   * First delay before the SDK retries a failed operation (reconnects included); it doubles up to
   * 30 s. The SDK's own default waits 30 s every time, too long for a message bus.
   * @default 500
   */
  readonly retryDelayMs?: number;
  /**
   * Senders (AMQP links) kept open per endpoint, one per destination; past this, the least
   * recently used idle one is closed. A server replying to many short-lived client instances would
   * otherwise keep a link to every instance queue it ever answered.
   * @default 100
   */
  readonly maxCachedSenders?: number;
  /**
   * TCP_NODELAY on the SDK's sockets. Without it each request/reply round trip waits about 40 ms
   * for a delayed ACK. The SDK has no option for it; the transport sets rhea's `tcp_no_delay` on
   * its own clients' connections (see src/no-delay.ts).
   * @default true
   */
  readonly tcpNoDelay?: boolean;
}

export type AzureServiceBusTransportOptions = (ConnectionStringConnection | CredentialConnection) &
  AzureServiceBusTransportSettings;

export const azureServiceBusTransportDefaults = {
  maxMessageSizeBytes: 256 * 1024,
  instanceQueueAutoDeleteOnIdleMs: 60 * 60 * 1000,
  maxDeliveryCount: 10,
  maxAutoLockRenewalDurationMs: 5 * 60 * 1000,
  operationTimeoutMs: 30_000,
  maxRetries: 3,
  retryDelayMs: 500,
  maxCachedSenders: 100,
  tcpNoDelay: true,
} as const satisfies Required<
  Omit<
    AzureServiceBusTransportSettings,
    'installer' | 'administration' | 'duplicateDetectionWindowMs' | 'lockDurationMs'
  >
>;

/** The options with defaults applied and every value checked; what the transport runs on. */
export interface ResolvedAzureServiceBusOptions {
  /** How the SDK's clients connect: the connection string, or the namespace and credential. */
  readonly connection: ConnectionStringConnection | CredentialConnection;
  /** The connection string, its key and signature: cut out of every message and `cause`. */
  readonly secrets: readonly string[];
  readonly installer: TopologyInstaller;
  readonly maxMessageSizeBytes: number;
  readonly instanceQueueAutoDeleteOnIdleMs: number;
  readonly maxDeliveryCount: number;
  /** 0 turns the SDK's lock renewal off. */
  readonly maxAutoLockRenewalDurationMs: number;
  readonly operationTimeoutMs: number;
  readonly maxRetries: number;
  readonly tcpNoDelay: boolean;
  readonly retryDelayMs: number;
  readonly maxCachedSenders: number;
  /** Unset: the queues this transport creates have no duplicate detection. */
  readonly duplicateDetectionWindowMs: number | undefined;
  /** Unset: the service's default lock duration. */
  readonly lockDurationMs: number | undefined;
}

function secretsOf(options: AzureServiceBusTransportOptions): string[] {
  if (!('connectionString' in options)) return [];
  const key = /SharedAccessKey=([^;]+)/i.exec(options.connectionString)?.[1];
  const signature = /SharedAccessSignature=([^;]+)/i.exec(options.connectionString)?.[1];
  return [options.connectionString, key, signature].filter((s): s is string => Boolean(s));
}

/**
 * Applies `azureServiceBusTransportDefaults` and checks every value, against Service Bus's own
 * limits where it has them, so bad input fails with a `ConfigurationError` when the transport is
 * created (never naming the key) instead of at the service.
 */
export function resolveAzureServiceBusOptions(
  options: AzureServiceBusTransportOptions,
): ResolvedAzureServiceBusOptions {
  const hasConnectionString =
    'connectionString' in options && typeof options.connectionString === 'string';
  const hasCredential =
    'fullyQualifiedNamespace' in options &&
    typeof options.fullyQualifiedNamespace === 'string' &&
    'credential' in options &&
    typeof options.credential?.getToken === 'function';
  if (!hasConnectionString && !hasCredential) {
    throw new ConfigurationError(
      'createAzureServiceBusTransport needs { connectionString } or { fullyQualifiedNamespace, credential }.',
    );
  }
  const connection: ConnectionStringConnection | CredentialConnection = hasConnectionString
    ? { connectionString: (options as ConnectionStringConnection).connectionString }
    : {
        fullyQualifiedNamespace: (options as CredentialConnection).fullyQualifiedNamespace,
        credential: (options as CredentialConnection).credential,
      };
  const secrets = secretsOf(options);
  const resolved = {
    // Premium's limit: a larger value would pass here and be refused by every namespace.
    maxMessageSizeBytes: checkServiceRange(
      'maxMessageSizeBytes',
      options.maxMessageSizeBytes ?? azureServiceBusTransportDefaults.maxMessageSizeBytes,
      1,
      serviceBusLimits.maxMessageSizeBytes,
    ),
    instanceQueueAutoDeleteOnIdleMs: checkServiceRange(
      'instanceQueueAutoDeleteOnIdleMs',
      options.instanceQueueAutoDeleteOnIdleMs ??
        azureServiceBusTransportDefaults.instanceQueueAutoDeleteOnIdleMs,
      serviceBusLimits.minAutoDeleteOnIdleMs,
    ),
    maxDeliveryCount: checkWholeNumber(
      'maxDeliveryCount',
      options.maxDeliveryCount ?? azureServiceBusTransportDefaults.maxDeliveryCount,
    ),
    // 0 turns the SDK's lock renewal off.
    maxAutoLockRenewalDurationMs: checkWholeNumber(
      'maxAutoLockRenewalDurationMs',
      options.maxAutoLockRenewalDurationMs ??
        azureServiceBusTransportDefaults.maxAutoLockRenewalDurationMs,
      0,
    ),
    // Also one timer per settlement: Node.js fires one of 2^31 ms or more at once.
    operationTimeoutMs: checkTimerMs(
      'operationTimeoutMs',
      options.operationTimeoutMs ?? azureServiceBusTransportDefaults.operationTimeoutMs,
    ),
    maxRetries: checkWholeNumber(
      'maxRetries',
      options.maxRetries ?? azureServiceBusTransportDefaults.maxRetries,
      0,
    ),
    tcpNoDelay: options.tcpNoDelay ?? azureServiceBusTransportDefaults.tcpNoDelay,
    retryDelayMs: checkWholeNumber(
      'retryDelayMs',
      options.retryDelayMs ?? azureServiceBusTransportDefaults.retryDelayMs,
    ),
    maxCachedSenders: checkWholeNumber(
      'maxCachedSenders',
      options.maxCachedSenders ?? azureServiceBusTransportDefaults.maxCachedSenders,
    ),
    duplicateDetectionWindowMs:
      options.duplicateDetectionWindowMs === undefined
        ? undefined
        : checkServiceRange(
            'duplicateDetectionWindowMs',
            options.duplicateDetectionWindowMs,
            serviceBusLimits.minDuplicateDetectionWindowMs,
            serviceBusLimits.maxDuplicateDetectionWindowMs,
          ),
    lockDurationMs:
      options.lockDurationMs === undefined
        ? undefined
        : checkServiceRange(
            'lockDurationMs',
            options.lockDurationMs,
            serviceBusLimits.minLockDurationMs,
            serviceBusLimits.maxLockDurationMs,
          ),
  };
  if (options.installer !== undefined && options.administration !== undefined) {
    throw new ConfigurationError(
      '`administration` configures the default installer; with your own `installer`, pass them to createAdministrationInstaller(connection, administration) instead.',
    );
  }
  const installer =
    options.installer ?? createAdministrationInstaller(connection, options.administration);
  return { connection, secrets, installer, ...resolved };
}
