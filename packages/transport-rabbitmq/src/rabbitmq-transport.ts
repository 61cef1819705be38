import {
  ConfigurationError,
  checkTimerMs,
  checkWholeNumber,
  type EndpointTopology,
  redactUrl,
  TRANSPORT_SPI_VERSION,
  type Transport,
  type TransportCapabilities,
  type TransportContext,
  type TransportEndpoint,
} from '@tidings/core';
import { MAX_DELAY_SECONDS } from './delay-levels.js';
import {
  type RabbitMqTransportOptions,
  type ResolvedRabbitMqOptions,
  rabbitMqTransportDefaults,
} from './options.js';
import { RabbitMqEndpoint, type TransportShared } from './rabbitmq-endpoint.js';

/** The longest AMQP 0-9-1 short string, in bytes: message ids, header names. */
const AMQP_SHORT_STRING_BYTES = 255;

/** How long opening a TCP (and TLS) connection may take before it counts as failed. */
const CONNECT_TIMEOUT_MS = 10_000;

const positiveInteger = (name: string, value: number) =>
  checkWholeNumber(`RabbitMQ: ${name}`, value);
/** An option that becomes one timer: at most `MAX_TIMER_MS`, which Node.js would fire at once. */
const timerMs = (name: string, value: number) => checkTimerMs(`RabbitMQ: ${name}`, value);

function resolveOptions(options: RabbitMqTransportOptions): ResolvedRabbitMqOptions {
  if (options === undefined || typeof options.url !== 'string' || options.url === '') {
    throw new ConfigurationError(
      'RabbitMQ: `url` is required, e.g. createRabbitMqTransport({ url: "amqp://user:pass@localhost:5672" }).',
    );
  }
  const d = rabbitMqTransportDefaults;
  const queueType = options.queueType ?? d.queueType;
  if (queueType !== 'quorum' && queueType !== 'classic') {
    throw new ConfigurationError(
      `RabbitMQ: queueType must be 'quorum' or 'classic', got '${String(queueType)}'.`,
    );
  }
  const prefetchMultiplier = options.prefetchMultiplier ?? d.prefetchMultiplier;
  if (!(prefetchMultiplier >= 1) || !Number.isFinite(prefetchMultiplier)) {
    throw new ConfigurationError(
      `RabbitMQ: prefetchMultiplier must be a number of at least 1, got ${prefetchMultiplier}.`,
    );
  }
  const reconnectInitialDelayMs = timerMs(
    'reconnectInitialDelayMs',
    options.reconnectInitialDelayMs ?? d.reconnectInitialDelayMs,
  );
  return {
    url: options.url,
    queueType,
    instanceQueueExpiresMs: positiveInteger(
      'instanceQueueExpiresMs',
      options.instanceQueueExpiresMs ?? d.instanceQueueExpiresMs,
    ),
    maxMessageSizeBytes: positiveInteger(
      'maxMessageSizeBytes',
      options.maxMessageSizeBytes ?? d.maxMessageSizeBytes,
    ),
    delayedDelivery: options.delayedDelivery ?? d.delayedDelivery,
    prefetchMultiplier,
    heartbeatSeconds: positiveInteger(
      'heartbeatSeconds',
      options.heartbeatSeconds ?? d.heartbeatSeconds,
    ),
    reconnectInitialDelayMs,
    reconnectMaxDelayMs: Math.max(
      reconnectInitialDelayMs,
      timerMs('reconnectMaxDelayMs', options.reconnectMaxDelayMs ?? d.reconnectMaxDelayMs),
    ),
    unavailableTimeoutMs: timerMs(
      'unavailableTimeoutMs',
      options.unavailableTimeoutMs ?? d.unavailableTimeoutMs,
    ),
    tls: options.tls,
    connectionName: options.connectionName ?? d.connectionName,
  };
}

/** Parses the URL, adds the heartbeat unless the URL sets one, and collects the secrets. */
function connectionTarget(options: ResolvedRabbitMqOptions): {
  connectUrl: string;
  redactedUrl: string;
  secrets: Array<string | undefined>;
} {
  let parsed: URL;
  try {
    parsed = new URL(options.url);
  } catch {
    throw new ConfigurationError(
      `RabbitMQ: url is not a valid URL (${redactUrl(options.url)}); expected amqp://user:pass@host:5672/vhost.`,
    );
  }
  if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') {
    throw new ConfigurationError(
      `RabbitMQ: url must start with amqp:// or amqps://, got ${redactUrl(options.url)}.`,
    );
  }
  if (!parsed.searchParams.has('heartbeat')) {
    parsed.searchParams.set('heartbeat', String(options.heartbeatSeconds));
  }
  const password = parsed.password;
  const secrets = [
    password === '' ? undefined : password,
    password === '' ? undefined : decodeURIComponent(password),
    options.tls?.passphrase,
  ];
  return { connectUrl: parsed.toString(), redactedUrl: redactUrl(options.url), secrets };
}

/**
 * RabbitMQ through amqplib: quorum endpoint queues, confirmed persistent sends, a fanout exchange
 * per event type, plugin-free delayed delivery, and recovery from lost connections and channels.
 */
export function createRabbitMqTransport(options: RabbitMqTransportOptions): Transport {
  const resolved = resolveOptions(options);
  const target = connectionTarget(resolved);
  const tls = resolved.tls;
  const shared: TransportShared = {
    options: resolved,
    connectUrl: target.connectUrl,
    redactedUrl: target.redactedUrl,
    secrets: target.secrets,
    socketOptions: {
      // Without it Nagle's algorithm holds small frames back: ~40 ms per round trip.
      noDelay: true,
      timeout: CONNECT_TIMEOUT_MS,
      ...(tls?.ca !== undefined ? { ca: tls.ca } : {}),
      ...(tls?.cert !== undefined ? { cert: tls.cert } : {}),
      ...(tls?.key !== undefined ? { key: tls.key } : {}),
      ...(tls?.passphrase !== undefined ? { passphrase: tls.passphrase } : {}),
      ...(tls?.servername !== undefined ? { servername: tls.servername } : {}),
      ...(tls?.rejectUnauthorized !== undefined
        ? { rejectUnauthorized: tls.rejectUnauthorized }
        : {}),
    },
    delayTopology: undefined,
  };
  const capabilities: TransportCapabilities = {
    delayedDelivery: resolved.delayedDelivery,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: resolved.maxMessageSizeBytes,
    deliveryCount: resolved.queueType === 'quorum',
    durable: true,
    // AMQP 0-9-1 short strings: the message-id property and header table field names.
    maxMessageIdBytes: AMQP_SHORT_STRING_BYTES,
    maxHeaderNameBytes: AMQP_SHORT_STRING_BYTES,
    ...(resolved.delayedDelivery ? { maxDelayMs: MAX_DELAY_SECONDS * 1000 } : {}),
  };
  return {
    spiVersion: TRANSPORT_SPI_VERSION,
    name: 'rabbitmq',
    capabilities,
    async openEndpoint(
      topology: EndpointTopology,
      context: TransportContext,
    ): Promise<TransportEndpoint> {
      const endpoint = new RabbitMqEndpoint(shared, topology, context.logger);
      await endpoint.open();
      return endpoint;
    },
  };
}
