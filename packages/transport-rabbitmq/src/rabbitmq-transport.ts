import {
  ConfigurationError,
  checkTimerMs,
  checkWholeNumber,
  type EndpointTopology,
  TRANSPORT_SPI_VERSION,
  type Transport,
  type TransportCapabilities,
  type TransportContext,
  type TransportEndpoint,
} from '@tidings/core';
import { brokerNodes } from './broker-nodes.js';
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

function resolveUrls(options: RabbitMqTransportOptions): readonly string[] {
  const example =
    'e.g. createRabbitMqTransport({ url: "amqp://user:pass@localhost:5672" }), or urls: [...] with one URL per cluster node.';
  if (options === undefined || (options.url === undefined && options.urls === undefined)) {
    throw new ConfigurationError(`RabbitMQ: \`url\` or \`urls\` is required, ${example}`);
  }
  if (options.url !== undefined && options.urls !== undefined) {
    throw new ConfigurationError(`RabbitMQ: give \`url\` or \`urls\`, not both; ${example}`);
  }
  const urls = options.urls ?? [options.url];
  if (
    !Array.isArray(urls) ||
    urls.length === 0 ||
    urls.some((url) => typeof url !== 'string' || url === '')
  ) {
    throw new ConfigurationError(
      `RabbitMQ: \`url\` must be a non-empty string and \`urls\` a non-empty list of them, ${example}`,
    );
  }
  return urls as readonly string[];
}

function resolveOptions(options: RabbitMqTransportOptions): ResolvedRabbitMqOptions {
  const urls = resolveUrls(options);
  const d = rabbitMqTransportDefaults;
  const queueType = options.queueType ?? d.queueType;
  if (queueType !== 'quorum' && queueType !== 'classic') {
    throw new ConfigurationError(
      `RabbitMQ: queueType must be 'quorum' or 'classic', got '${String(queueType)}'.`,
    );
  }
  const nodeOrder = options.nodeOrder ?? d.nodeOrder;
  if (nodeOrder !== 'in-order' && nodeOrder !== 'shuffled') {
    throw new ConfigurationError(
      `RabbitMQ: nodeOrder must be 'in-order' or 'shuffled', got '${String(nodeOrder)}'.`,
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
    urls,
    nodeOrder,
    queueType,
    quorumInitialGroupSize:
      options.quorumInitialGroupSize === undefined
        ? undefined
        : positiveInteger('quorumInitialGroupSize', options.quorumInitialGroupSize),
    instanceQueueExpiresMs: positiveInteger(
      'instanceQueueExpiresMs',
      options.instanceQueueExpiresMs ?? d.instanceQueueExpiresMs,
    ),
    maxMessageSizeBytes: positiveInteger(
      'maxMessageSizeBytes',
      options.maxMessageSizeBytes ?? d.maxMessageSizeBytes,
    ),
    delayedDelivery: options.delayedDelivery ?? d.delayedDelivery,
    persistentCallbackRequests: options.persistentCallbackRequests ?? d.persistentCallbackRequests,
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

/**
 * RabbitMQ through amqplib: quorum endpoint queues, confirmed persistent sends, a fanout exchange
 * per event type, plugin-free delayed delivery, and recovery from lost connections and channels.
 */
export function createRabbitMqTransport(options: RabbitMqTransportOptions): Transport {
  const resolved = resolveOptions(options);
  const tls = resolved.tls;
  const { nodes, secrets } = brokerNodes(resolved.urls, resolved.heartbeatSeconds, tls?.passphrase);
  const shared: TransportShared = {
    options: resolved,
    nodes,
    secrets,
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
