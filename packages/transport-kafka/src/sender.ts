import { UsageError } from '@tidings/core';
import type { TransportOperation } from '@tidings/core/transport';
import { mapKafkaError } from './errors.js';
import type { KafkaClient, OutgoingRecord } from './kafka-client.js';
import { copiedHeaders, recordHeadersFor } from './kafka-headers.js';
import type { ProducerBatcher } from './producer-batcher.js';
import type { KafkaTopology } from './topology.js';

/** Where a sender produces through: the transport's shared connection. */
export interface SenderConnection {
  /** The shared producer's batcher; undefined once the transport's connection closed. */
  readonly batcher: ProducerBatcher | undefined;
  readonly topology: KafkaTopology;
  /** Cut out of error messages and causes. */
  readonly secrets: readonly (string | undefined)[];
}

/**
 * Dispatches an endpoint's operations (send, publish, reply; Kafka cannot delay) as records:
 * queues and event types to their topics, through the transport's producer batcher.
 */
export class Sender {
  constructor(
    private readonly kafka: KafkaClient,
    private readonly connection: SenderConnection,
    private readonly orderingKeyHeader: string,
  ) {}

  /**
   * Not async: this runs for every send, and an async frame would hold the operations (their
   * headers and bodies) until the produce is acknowledged; only the destination is kept.
   */
  dispatch(operations: readonly TransportOperation[]): Promise<void> {
    try {
      if (operations.length === 0) return Promise.resolve();
      const producing = this.connection.batcher;
      if (producing === undefined) {
        throw mapKafkaError(new Error('The transport was closed.'), { operation: 'dispatch' });
      }
      const [first] = operations;
      const destination =
        operations.length === 1 && first?.destination.kind === 'queue'
          ? first.destination.queue
          : undefined;
      const { secrets } = this.connection;
      const produce = (records: OutgoingRecord[]) =>
        producing.send(records).catch((error: unknown) => {
          throw mapKafkaError(error, {
            operation: `produce ${records.length} record(s)`,
            ...(destination !== undefined ? { destination } : {}),
            secrets,
          });
        });
      const pending = this.toRecords(operations);
      return Array.isArray(pending) ? produce(pending) : pending.then(produce);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Synchronous when every topic is already known (the common case), else after the checks. */
  private toRecords(
    operations: readonly TransportOperation[],
  ): OutgoingRecord[] | Promise<OutgoingRecord[]> {
    for (const operation of operations) {
      if (operation.delayMs !== undefined && operation.delayMs > 0) {
        throw new UsageError(
          "The Kafka transport cannot delay delivery (capabilities.delayedDelivery is false); send without 'delayMs'.",
        );
      }
    }
    const { topology } = this.connection;
    const topics = operations.map((operation) => topology.topicFor(this.kafka, operation));
    if (topics.every((topic) => typeof topic === 'string')) {
      return operations.map((operation, i) => this.recordFor(topics[i] as string, operation));
    }
    return Promise.all(topics).then((known) =>
      operations.map((operation, i) => this.recordFor(known[i] as string, operation)),
    );
  }

  private recordFor(topic: string, operation: TransportOperation): OutgoingRecord {
    const { message } = operation;
    const orderingKey = message.headers[this.orderingKeyHeader];
    return {
      topic,
      key: orderingKey ?? message.messageId,
      keyed: orderingKey !== undefined,
      value: message.body,
      headers: copiedHeaders(operation) ?? recordHeadersFor(message.headers),
    };
  }
}
