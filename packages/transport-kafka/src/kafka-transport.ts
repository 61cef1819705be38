import type { Transport, TransportCapabilities } from '@tidings/core';
import {
  type EndpointTopology,
  TRANSPORT_SPI_VERSION,
  type TransportContext,
  type TransportEndpoint,
} from '@tidings/core/transport';
import { KafkaConnection } from './kafka-connection.js';
import { KafkaEndpoint } from './kafka-endpoint.js';
import { type KafkaTransportOptions, resolveKafkaOptions } from './options.js';

/** The Kafka transport, plus what tests and tools need to name its topics and release it. */
export interface KafkaTransport extends Transport {
  /** The topic a queue (input, instance or error queue) maps to. */
  queueTopic(queue: string): string;
  /** The topic events of a message type are published to. */
  eventTopic(messageType: string): string;
  /** Closes the shared producer and admin connections (endpoints close their own consumers). */
  close(): Promise<void>;
}

/**
 * Kafka through kafkajs. Each endpoint has an input topic read by a consumer group named after it
 * (its instances compete in the group), an error topic, a topic per event type it handles (read
 * by the same group) and, per instance, a reply topic read by a group of that instance alone.
 */
export function createKafkaTransport(options: KafkaTransportOptions): KafkaTransport {
  const settings = resolveKafkaOptions(options);
  const capabilities: TransportCapabilities = {
    delayedDelivery: false,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: settings.maxMessageSizeBytes,
    deliveryCount: false,
    durable: true,
    // A queue is a topic, read partition by partition.
    partitionedQueues: true,
  };
  const connection = new KafkaConnection(settings);
  const { topology } = connection;
  return {
    spiVersion: TRANSPORT_SPI_VERSION,
    name: 'kafka',
    capabilities,
    queueTopic: topology.queueTopic,
    eventTopic: topology.eventTopic,
    close: connection.close,
    openEndpoint(
      endpointTopology: EndpointTopology,
      context: TransportContext,
    ): Promise<TransportEndpoint> {
      return connection.withEndpoint(context.logger, (kafka) =>
        KafkaEndpoint.open(connection, kafka, settings, endpointTopology, context),
      );
    },
  };
}
