import type { Transport, TransportCapabilities } from '@tidings/core';
import {
  type EndpointTopology,
  TRANSPORT_SPI_VERSION,
  type TransportContext,
  type TransportEndpoint,
} from '@tidings/core/transport';
import { AzureServiceBusEndpoint } from './azure-service-bus-endpoint.js';
import { failWith } from './errors.js';
import { type AzureServiceBusTransportOptions, resolveAzureServiceBusOptions } from './options.js';
import type { ReceiveCounters } from './receiver.js';
import { TRANSPORT_NAME } from './sender.js';

/** Counts of what happened on the wire, for tests and monitoring. */
export interface AzureServiceBusTransportStats {
  /** Settlements that failed (lock lost, link gone): the message is delivered again. */
  readonly settlementFailures: number;
  /** Errors the SDK reported while receiving (it reconnects by itself). */
  readonly receiveErrors: number;
  /** Receivers replaced because nothing arrived for a while after a receive error. */
  readonly receiverRestarts: number;
  /** Queues created again after they were deleted under a running receiver (auto-delete on idle). */
  readonly queuesRecreated: number;
}

export interface AzureServiceBusTransport extends Transport {
  readonly stats: AzureServiceBusTransportStats;
}

/**
 * Azure Service Bus through @azure/service-bus: a queue per endpoint, an instance queue that
 * deletes itself when idle, a topic per event type with a forwarding subscription per
 * subscribing endpoint, peek-lock receiving with explicit settlement, scheduled messages for
 * delays.
 */
export function createAzureServiceBusTransport(
  options: AzureServiceBusTransportOptions,
): AzureServiceBusTransport {
  const resolved = resolveAzureServiceBusOptions(options);
  const fail = failWith(resolved.secrets);
  const capabilities: TransportCapabilities = {
    delayedDelivery: true,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: resolved.maxMessageSizeBytes,
    deliveryCount: true,
    durable: true,
    nativeDeadLetter: true,
  };
  const counters: ReceiveCounters = {
    settlementFailures: 0,
    receiveErrors: 0,
    receiverRestarts: 0,
    queuesRecreated: 0,
  };
  return {
    spiVersion: TRANSPORT_SPI_VERSION,
    name: TRANSPORT_NAME,
    capabilities,
    get stats() {
      return { ...counters };
    },
    openEndpoint(
      topology: EndpointTopology,
      context: TransportContext,
    ): Promise<TransportEndpoint> {
      return AzureServiceBusEndpoint.open(topology, context, resolved, counters, fail);
    },
  };
}
