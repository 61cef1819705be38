import type { Logger } from '@tidings/core';
import {
  type EndpointTopology,
  Headers,
  type IncomingTransportMessage,
  type MessageOutcome,
  QueueSlots,
  type ReceiveSettings,
} from '@tidings/core/transport';
import { GroupReader, type ReaderHost } from './group-reader.js';
import type { IncomingRecord, KafkaClient, RecordBatch } from './kafka-client.js';
import { headersFromRecord, rememberRecord } from './kafka-headers.js';
import type { ResolvedKafkaOptions } from './options.js';
import type { PartitionState } from './partition-state.js';
import type { SubscriptionAnchors } from './subscription-anchors.js';

/** The endpoint a receiver reads for. */
export interface ReceiverEndpoint {
  readonly kafka: KafkaClient;
  readonly settings: ResolvedKafkaOptions;
  readonly logger: Logger;
  readonly topology: EndpointTopology;
  /** Undefined for an endpoint without an input queue. */
  readonly inputTopic: string | undefined;
  readonly instanceTopic: string | undefined;
  /** The event types the input group reads, read at each (re)start. */
  readonly subscriptions: ReadonlySet<string>;
  eventTopic(messageType: string): string;
  /** Where new subscriptions start; undefined without an input queue. */
  readonly anchors: SubscriptionAnchors | undefined;
}

/**
 * Consumes an endpoint's queues: its input topic with its event topics in the endpoint's group
 * (its instances compete there), its instance topic in a group of that instance alone. Hands each
 * record to core (`onMessage`, guarded: nothing it throws reaches kafkajs) within one `QueueSlots`
 * per queue, and records positions as outcomes become durable.
 */
export class Receiver implements ReaderHost {
  readonly kafka: KafkaClient;
  readonly settings: ResolvedKafkaOptions;
  readonly concurrency: number;
  /**
   * The input queue's (with its event topics) and the instance queue's handling slots, apart:
   * replies find slots while every input slot is held by a handler awaiting one. The input's
   * outlive a subscription change's restart, so old and new consumer share one bound.
   */
  private readonly inputSlots: QueueSlots;
  private readonly instanceSlots: QueueSlots;
  private stopping = false;
  private main: GroupReader | undefined;
  private instance: GroupReader | undefined;
  /** The queue each topic's records count as received from. */
  private readonly queueOfTopic = new Map<string, string>();

  constructor(
    private readonly endpoint: ReceiverEndpoint,
    private readonly receive: ReceiveSettings,
  ) {
    this.kafka = endpoint.kafka;
    this.settings = endpoint.settings;
    this.concurrency = receive.concurrency;
    this.inputSlots = new QueueSlots(receive.concurrency);
    this.instanceSlots = new QueueSlots(receive.concurrency);
    const { topology, inputTopic, instanceTopic } = endpoint;
    if (inputTopic !== undefined && topology.inputQueue !== undefined) {
      this.queueOfTopic.set(inputTopic, topology.inputQueue);
    }
    if (instanceTopic !== undefined && topology.instanceQueue !== undefined) {
      this.queueOfTopic.set(instanceTopic, topology.instanceQueue);
    }
  }

  readonly isStopping = (): boolean => this.stopping;

  /** Not async, and no await: this runs for every record. Never rejects. */
  readonly deliver = (record: IncomingRecord, batch: RecordBatch): Promise<MessageOutcome> => {
    const { headers, unreadableReason } = headersFromRecord(record.headers);
    const message: IncomingTransportMessage = {
      messageId: headers[Headers.MessageId] ?? `${batch.topic}/${batch.partition}/${record.offset}`,
      headers,
      body: record.value,
      // Events arrive on the endpoint's behalf: they count as received from its input queue.
      queue: this.queueOfTopic.get(batch.topic) ?? this.endpoint.topology.inputQueue ?? batch.topic,
      ...(unreadableReason !== undefined ? { unreadableReason } : {}),
    };
    rememberRecord(message, record);
    try {
      return this.receive.onMessage(message).catch((error: unknown) => this.failed(message, error));
    } catch (error) {
      return Promise.resolve(this.failed(message, error));
    }
  };

  /** Starts the input group's consumer and the instance group's. */
  async start(): Promise<void> {
    await this.startMain();
    const { instanceTopic } = this.endpoint;
    if (instanceTopic !== undefined) {
      this.instance = new GroupReader(
        this,
        instanceTopic,
        [{ topic: instanceTopic, from: 'earliest' }],
        this.instanceSlots,
        { exclusive: true, onShared: (owner) => this.instanceShared(owner) },
        undefined,
      );
      await this.instance.consumer.start();
    }
  }

  /** Resolves once both groups have joined and caught up with what was waiting (`GroupReader`). */
  async caughtUp(): Promise<void> {
    await Promise.all([this.main?.caughtUp(), this.instance?.caughtUp()]);
  }

  /** Nothing new starts; handlers in flight finish, their records are committed at `stop`. */
  pause(): void {
    this.stopping = true;
    this.main?.consumer.pause();
    this.instance?.consumer.pause();
  }

  /** Nothing new starts (the consumers go on until `stop`). */
  halt(): void {
    this.stopping = true;
  }

  /** Stops both consumers once their records are done (or after `drainTimeoutMs`). */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([this.stopReader(this.main), this.stopReader(this.instance)]);
  }

  /**
   * Replaces the input group's consumer with one reading the endpoint's subscriptions now: kafkajs
   * cannot change a running consumer's topics.
   */
  async restartMain(): Promise<void> {
    if (this.stopping) return;
    const previous = this.main;
    this.main = undefined;
    // Left before the next consumer joins: the two would share a generation otherwise.
    await this.stopReader(previous, { waitForJoin: true });
    // Records the stop did not wait for (past its bound) run on; those not started yet stay
    // for the new consumer, which waits for the running ones' keys.
    const running = previous?.revokeAll();
    // close() or stopReceiving() may have come while the previous consumer stopped.
    if (this.stopping) return;
    await this.startMain(running);
  }

  private async startMain(inherited?: ReadonlyMap<string, PartitionState>): Promise<void> {
    const { inputTopic, subscriptions, anchors } = this.endpoint;
    if (inputTopic === undefined) return;
    this.main = new GroupReader(
      this,
      inputTopic,
      [
        { topic: inputTopic, from: 'earliest' },
        ...[...subscriptions].map((type) => ({
          topic: this.endpoint.eventTopic(type),
          from: 'latest' as const,
        })),
      ],
      this.inputSlots,
      { exclusive: false },
      anchors,
      inherited,
    );
    await this.main.consumer.start();
  }

  /** Stops a reader once the records it took in are done (or after `drainTimeoutMs`). */
  private async stopReader(
    reader: GroupReader | undefined,
    options?: { readonly waitForJoin?: boolean },
  ): Promise<void> {
    if (reader === undefined) return;
    reader.consumer.pause();
    const deadline = Date.now() + this.settings.drainTimeoutMs;
    while (reader.inFlight() > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await reader.consumer.stop(options);
  }

  private failed(message: IncomingTransportMessage, error: unknown): MessageOutcome {
    this.endpoint.logger.error('onMessage rejected; the record will be handled again', {
      messageId: message.messageId,
      error: error instanceof Error ? error.message : String(error),
    });
    return 'abandon';
  }

  /**
   * Two live processes with one instance id share its reply group: the longest there keeps every
   * partition (its replies), the other gets none until it leaves. Both are told, loudly.
   */
  private instanceShared(owner: boolean): void {
    const { endpointName, instanceQueue } = this.endpoint.topology;
    const instanceId =
      instanceQueue?.startsWith(`${endpointName}.`) === true
        ? instanceQueue.slice(endpointName.length + 1)
        : instanceQueue;
    const advice =
      'Give every replica its own instanceId, e.g. from the HOSTNAME or pod name, and keep it across restarts of that replica.';
    this.endpoint.logger.error(
      owner
        ? `Another process of endpoint '${endpointName}' runs with instance id '${instanceId}': this one keeps receiving the replies to that id, the other receives none and its requests time out. ${advice}`
        : `Another process of endpoint '${endpointName}' already runs with instance id '${instanceId}': it receives the replies to that id, so requests made here time out (until it stops). ${advice}`,
      { instanceId, instanceQueue },
    );
  }
}
