import { type Logger, UsageError } from '@tidings/core';
import type {
  EndpointTopology,
  ReceiveSettings,
  TransportContext,
  TransportEndpoint,
  TransportOperation,
} from '@tidings/core/transport';
import { mapKafkaError } from './errors.js';
import type { KafkaClient } from './kafka-client.js';
import type { KafkaConnection } from './kafka-connection.js';
import type { ResolvedKafkaOptions } from './options.js';
import { Receiver, type ReceiverEndpoint } from './receiver.js';
import { Sender } from './sender.js';
import { SubscriptionAnchors } from './subscription-anchors.js';
import type { EndpointTopics } from './topology.js';

/**
 * One endpoint on the transport's connection: its topics, a `Sender` for what it dispatches and,
 * once it receives, a `Receiver` for its queues. Subscribing rejoins its group with the new set of
 * event topics, one change at a time.
 */
export class KafkaEndpoint implements TransportEndpoint, ReceiverEndpoint {
  readonly logger: Logger;
  readonly inputTopic: string | undefined;
  readonly instanceTopic: string | undefined;
  readonly subscriptions: Set<string>;
  readonly anchors: SubscriptionAnchors | undefined;
  private readonly sender: Sender;
  private receiver: Receiver | undefined;
  private closed = false;
  /**
   * Subscription changes one at a time, in the order they were asked for: two restarts at once
   * would each start a consumer, and the one overwritten would run on unstopped. close() waits for
   * the change under way.
   */
  private changing: Promise<void> = Promise.resolve();

  /** Creates the endpoint's topics and reads where its subscriptions start, then the endpoint. */
  static async open(
    connection: KafkaConnection,
    kafka: KafkaClient,
    settings: ResolvedKafkaOptions,
    topology: EndpointTopology,
    context: TransportContext,
  ): Promise<KafkaEndpoint> {
    const topics = connection.topology.topicsOf(topology);
    const endpoint = new KafkaEndpoint(connection, kafka, settings, topology, context, topics);
    await connection.topology.declareEndpoint(kafka, topics, endpoint.subscriptions);
    const { anchors } = endpoint;
    if (anchors !== undefined) {
      await Promise.all(
        [...endpoint.subscriptions].map((type) => anchors.anchor(endpoint.eventTopic(type))),
      );
    }
    return endpoint;
  }

  private constructor(
    private readonly connection: KafkaConnection,
    readonly kafka: KafkaClient,
    readonly settings: ResolvedKafkaOptions,
    readonly topology: EndpointTopology,
    context: TransportContext,
    topics: EndpointTopics,
  ) {
    this.logger = context.logger;
    this.inputTopic = topics.inputTopic;
    this.instanceTopic = topics.instanceTopic;
    this.subscriptions = new Set(topics.inputTopic !== undefined ? topology.subscriptions : []);
    this.anchors =
      topics.inputTopic !== undefined
        ? new SubscriptionAnchors(kafka, topics.inputTopic, context.logger, connection.secrets)
        : undefined;
    this.sender = new Sender(kafka, connection, settings.orderingKeyHeader);
  }

  eventTopic(messageType: string): string {
    return this.connection.topology.eventTopic(messageType);
  }

  dispatch(operations: readonly TransportOperation[]): Promise<void> {
    return this.sender.dispatch(operations);
  }

  async startReceiving(receiveSettings: ReceiveSettings): Promise<void> {
    if (this.receiver !== undefined) return;
    if (this.closed) throw new UsageError('This Kafka endpoint connection is closed.');
    const receiver = new Receiver(this, receiveSettings);
    this.receiver = receiver;
    try {
      await receiver.start();
    } catch (error) {
      throw mapKafkaError(error, {
        operation: 'start consumers',
        secrets: this.connection.secrets,
      });
    }
  }

  async whenReceiving(): Promise<void> {
    await this.receiver?.caughtUp();
  }

  async stopReceiving(): Promise<void> {
    // Handlers in flight finish and their records are committed at close; nothing new starts.
    this.receiver?.pause();
  }

  async subscribe(messageType: string): Promise<void> {
    const { anchors } = this;
    if (anchors === undefined) return;
    await this.changeSubscriptions(async () => {
      if (this.subscriptions.has(messageType)) return;
      await this.connection.topology.ensureEventTopic(this.kafka, messageType);
      await anchors.anchor(this.eventTopic(messageType));
      // In the set only once subscribed, so that a failed subscribe can be made again.
      this.subscriptions.add(messageType);
      try {
        // kafkajs cannot change a running consumer's topics: rejoin with the new set.
        await this.receiver?.restartMain();
      } catch (error) {
        this.subscriptions.delete(messageType);
        throw error;
      }
    });
  }

  async unsubscribe(messageType: string): Promise<void> {
    await this.changeSubscriptions(async () => {
      if (!this.subscriptions.delete(messageType)) return;
      try {
        await this.receiver?.restartMain();
      } catch (error) {
        this.subscriptions.add(messageType);
        throw error;
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.receiver?.halt();
    // A restart under way starts nothing now; what it left running is stopped below.
    await this.changing;
    await this.receiver?.stop();
    await this.connection.endpointClosed();
  }

  private changeSubscriptions(change: () => Promise<void>): Promise<void> {
    const run = this.changing.then(change);
    this.changing = run.catch(() => {});
    return run;
  }
}
