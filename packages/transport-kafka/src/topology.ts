import { DestinationNotFoundError } from '@tidings/core';
import type { EndpointTopology, TransportOperation } from '@tidings/core/transport';
import { mapKafkaError } from './errors.js';
import type { KafkaClient, TopicSpec } from './kafka-client.js';
import type { ResolvedKafkaOptions } from './options.js';
import { toTopicName } from './topic-names.js';

/** An endpoint's topics: queues map to topics one to one. */
export interface EndpointTopics {
  readonly inputTopic: string | undefined;
  readonly instanceTopic: string | undefined;
  readonly errorTopic: string;
}

/**
 * The transport's topics: how queues and event types are named as topics, which exist (made here,
 * or seen in the cluster), and creating those an endpoint needs. Shared by the transport's
 * endpoints; what it made is forgotten when the transport's connection closes.
 */
export class KafkaTopology {
  /** Topics this transport created (or had auto-created) since it connected. */
  private readonly ensured = new Set<string>();
  /** Topics known to exist: created here, or listed by the cluster. */
  private readonly known = new Set<string>();
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly settings: ResolvedKafkaOptions,
    private readonly secrets: readonly (string | undefined)[],
  ) {}

  /** The topic a queue (input, instance or error queue) maps to. */
  readonly queueTopic = (queue: string): string => toTopicName(this.settings.topicPrefix, queue);

  /** The topic events of a message type are published to. */
  readonly eventTopic = (messageType: string): string =>
    toTopicName(`${this.settings.topicPrefix}${this.settings.eventTopicPrefix}`, messageType);

  topicsOf(topology: EndpointTopology): EndpointTopics {
    return {
      inputTopic:
        topology.inputQueue !== undefined ? this.queueTopic(topology.inputQueue) : undefined,
      instanceTopic:
        topology.instanceQueue !== undefined ? this.queueTopic(topology.instanceQueue) : undefined,
      errorTopic: this.queueTopic(topology.errorQueue),
    };
  }

  /** Creates an endpoint's topics: error, input, instance (with its retention), subscribed events. */
  async declareEndpoint(
    kafka: KafkaClient,
    topics: EndpointTopics,
    subscriptions: Iterable<string>,
  ): Promise<void> {
    const specs = [this.spec(topics.errorTopic)];
    if (topics.inputTopic !== undefined) specs.push(this.spec(topics.inputTopic));
    if (topics.instanceTopic !== undefined) {
      specs.push(
        this.spec(topics.instanceTopic, {
          'retention.ms': String(this.settings.instanceTopicRetentionMs),
        }),
      );
    }
    for (const type of subscriptions) specs.push(this.spec(this.eventTopic(type)));
    await this.ensure(kafka, specs);
  }

  /** Creates an event type's topic, if this transport has not already. */
  ensureEventTopic(kafka: KafkaClient, messageType: string): Promise<void> {
    return this.ensure(kafka, [this.spec(this.eventTopic(messageType))]);
  }

  /** The topic an operation goes to, or a promise of it when the topic must be checked first. */
  topicFor(kafka: KafkaClient, operation: TransportOperation): string | Promise<string> {
    const { destination } = operation;
    if (destination.kind === 'queue') {
      const topic = this.queueTopic(destination.queue);
      if (this.known.has(topic)) return topic;
      return this.assertQueueExists(kafka, destination.queue, topic).then(() => topic);
    }
    const topic = this.eventTopic(destination.messageType);
    if (this.ensured.has(topic)) return topic;
    // Publishing with no subscriber yet must still work: the event topic is created on demand.
    return this.ensure(kafka, [this.spec(topic)]).then(() => topic);
  }

  /** The connection closed: topics are created (or checked) again on the next one. */
  forgetCreated(): void {
    this.ensured.clear();
  }

  private spec(topic: string, config?: Record<string, string>): TopicSpec {
    return {
      topic,
      partitions: this.settings.partitions,
      replicationFactor: this.settings.replicationFactor,
      ...(config ? { config } : {}),
    };
  }

  private async ensure(kafka: KafkaClient, specs: TopicSpec[]): Promise<void> {
    const unique = new Map(specs.map((s) => [s.topic, s] as const));
    const missing = [...unique.values()].filter((s) => !this.ensured.has(s.topic));
    if (missing.length === 0) return;
    try {
      await kafka.ensureTopics(missing);
    } catch (error) {
      throw mapKafkaError(error, {
        operation: `create topics ${missing.map((s) => s.topic).join(', ')}`,
        secrets: this.secrets,
      });
    }
    for (const spec of missing) {
      this.ensured.add(spec.topic);
      this.known.add(spec.topic);
    }
  }

  /** A queue's topic must exist: sending to a queue nobody created fails like on other brokers. */
  private async assertQueueExists(kafka: KafkaClient, queue: string, topic: string): Promise<void> {
    if (this.known.has(topic)) return;
    this.refreshing ??= kafka
      .listTopics()
      .then((topics) => {
        for (const name of topics) this.known.add(name);
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    try {
      await this.refreshing;
    } catch (error) {
      throw mapKafkaError(error, { operation: 'list topics', secrets: this.secrets });
    }
    if (!this.known.has(topic)) throw new DestinationNotFoundError(queue);
  }
}
