import type { Transport, TransportCapabilities } from '@tidings/core';
import {
  type EndpointTopology,
  TRANSPORT_SPI_VERSION,
  type TransportContext,
  type TransportEndpoint,
} from '@tidings/core/transport';
import { brokerNodes } from './broker-nodes.js';
import { MAX_DELAY_SECONDS } from './delay-levels.js';
import { type RabbitMqTransportOptions, resolveRabbitMqOptions } from './options.js';
import { RabbitMqEndpoint, type TransportShared } from './rabbitmq-endpoint.js';

/** The longest AMQP 0-9-1 short string, in bytes: message ids, header names. */
const AMQP_SHORT_STRING_BYTES = 255;

/** How long opening a TCP (and TLS) connection may take before it counts as failed. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * RabbitMQ through amqplib: quorum endpoint queues, confirmed persistent sends, a fanout exchange
 * per event type, plugin-free delayed delivery, and recovery from lost connections and channels.
 */
export function createRabbitMqTransport(options: RabbitMqTransportOptions): Transport {
  const resolved = resolveRabbitMqOptions(options);
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
