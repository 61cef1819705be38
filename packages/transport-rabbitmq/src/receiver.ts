import { ConfigurationError, Headers, type Logger, TransportUnavailableError } from '@tidings/core';
import {
  type EndpointTopology,
  type IncomingTransportMessage,
  type MessageOutcome,
  QueueSlots,
  type ReceiveSettings,
} from '@tidings/core/transport';
import type { ConsumeMessage } from 'amqplib';
import { ConsumerChannel } from './consumer-channel.js';
import { AmqpCode, amqpCodeOf } from './errors.js';
import type { ResolvedRabbitMqOptions } from './options.js';
import type { EndpointLink, TransportShared } from './rabbitmq-endpoint.js';
import { contentMessageId, deliveryCountOf, headersFromAmqp } from './rabbitmq-headers.js';

/** The native message behind each message this transport handed over, for copies of it. */
export const received = new WeakMap<IncomingTransportMessage, ConsumeMessage>();

/**
 * Consumes the endpoint's own queues (input and instance) on one consumer channel, hands each
 * message to `onMessage` within its queue's slots, and settles the outcome (acks coalesced per
 * pass, see `ConsumerChannel`). Handler errors never reach amqplib: they count as `abandon`.
 */
export class Receiver {
  private consumer: ConsumerChannel | undefined;
  /** Consumer channels stopped but kept open so in-flight messages can still be settled. */
  private retired: ConsumerChannel[] = [];
  private receiving: ReceiveSettings | undefined;
  /** Set while the broker refuses this instance's exclusive consumer: the id is in use. */
  instanceInUse: ConfigurationError | undefined;
  private readonly ownQueues: string[];
  /** Messages being handled, across the queues; the endpoint's close waits for none. */
  active = 0;
  /**
   * One queue's handling slots: the input and instance queues each get `concurrency`, so replies
   * never wait behind handlers that await requests.
   */
  private readonly slots = new Map<string, QueueSlots>();
  /** The instance queue's slots, once receiving: its replies are acked lazily. */
  private instanceQueueSlots: QueueSlots | undefined;
  /** Set while `handBack` runs: waiting messages it reaches pass their slot on to its loop. */
  private handingBack = false;
  private slotsToPass = 0;

  constructor(
    private readonly endpoint: EndpointLink,
    private readonly shared: TransportShared,
    private readonly topology: EndpointTopology,
    private readonly logger: Logger,
  ) {
    this.ownQueues = [topology.inputQueue, topology.instanceQueue].filter(
      (queue): queue is string => queue !== undefined,
    );
  }

  private get options(): ResolvedRabbitMqOptions {
    return this.shared.options;
  }

  /** True while receiving without a consumer. */
  get incomplete(): boolean {
    return this.receiving !== undefined && this.consumer === undefined;
  }

  /** Opens the consumer if receiving without one. */
  async reopen(): Promise<void> {
    const settings = this.receiving;
    if (settings !== undefined && this.consumer === undefined) await this.openConsumer(settings);
  }

  /** Sends the coalesced acks still waiting for their pass (before the connection closes). */
  flush(): void {
    this.consumer?.flush();
    for (const retired of this.retired) retired.flush();
  }

  /** The connection is gone: nothing it delivered can be settled any more (the broker redelivers). */
  connectionLost(): void {
    if (this.consumer !== undefined) this.consumer.open = false;
    this.consumer = undefined;
    for (const retired of this.retired) retired.open = false;
    this.retired = [];
    for (const slots of this.slots.values()) slots.dropWaiting();
  }

  /** Drops the consumer: its connection is closing. */
  forget(): void {
    this.consumer = undefined;
  }

  async startReceiving(settings: ReceiveSettings): Promise<void> {
    if (this.endpoint.closed)
      throw new TransportUnavailableError('RabbitMQ: the endpoint is closed.');
    if (this.receiving !== undefined || this.ownQueues.length === 0) return;
    this.receiving = settings;
    for (const queue of this.ownQueues) {
      // Kept across a stop and start with the same concurrency: handlers still running count.
      if (this.slots.get(queue)?.limit !== settings.concurrency) {
        this.slots.set(queue, new QueueSlots(settings.concurrency));
      }
    }
    const instanceQueue = this.topology.instanceQueue;
    this.instanceQueueSlots =
      instanceQueue === undefined ? undefined : this.slots.get(instanceQueue);
    if (this.consumer !== undefined) {
      this.retired.push(this.consumer);
      this.consumer = undefined;
    }
    this.endpoint.kick();
    await this.endpoint.waitFor(() => {
      if (this.instanceInUse !== undefined) throw this.instanceInUse;
      return this.consumer;
    }, Date.now() + this.options.unavailableTimeoutMs);
  }

  async stopReceiving(): Promise<void> {
    if (this.receiving === undefined) return;
    this.receiving = undefined;
    const consumer = this.consumer;
    if (consumer?.open) {
      consumer.cancelled = true;
      const tags = consumer.consumerTags;
      consumer.consumerTags = [];
      await Promise.allSettled(tags.map((tag) => consumer.channel.cancel(tag)));
    }
    // Prefetched messages no handler has seen go back to the queue now. Every slot is taken while
    // messages wait: lend one, which each waiting message, finding receiving stopped, hands on to
    // the next; the last gives it back, and it is taken again.
    for (const slots of this.slots.values()) {
      // Started again meanwhile: what still waits is handed back as its turn comes.
      if (slots.queued === 0 || this.receiving !== undefined) continue;
      this.handBack(slots);
      slots.tryAcquire();
    }
  }

  private onDelivery(
    consumer: ConsumerChannel,
    queue: string,
    slots: QueueSlots,
    message: ConsumeMessage | null,
  ) {
    if (message === null) {
      // The broker cancelled the consumer (its queue was deleted): declare and consume again.
      if (this.consumer === consumer && !this.endpoint.closed) {
        this.logger.warn(
          `RabbitMQ: consumer of '${queue}' was cancelled by the broker; recreating it`,
        );
        this.endpoint.topologyDeclared = false;
        consumer.channel.close().catch(() => {});
      }
      return;
    }
    consumer.delivered(message);
    const settings = this.receiving;
    if (settings === undefined || consumer.cancelled) {
      this.settleNative(consumer, message, 'abandon');
      return;
    }
    if (slots.tryAcquire()) this.process(consumer, queue, message, settings, slots);
    else slots.whenFree(() => this.resume(consumer, queue, message, slots));
  }

  /** A waiting message's turn: handled, or handed back if receiving stopped or its channel went. */
  private resume(
    consumer: ConsumerChannel,
    queue: string,
    message: ConsumeMessage,
    slots: QueueSlots,
  ): void {
    const settings = this.receiving;
    if (settings !== undefined && consumer.open && !consumer.cancelled) {
      this.process(consumer, queue, message, settings, slots);
      return;
    }
    this.settleNative(consumer, message, 'abandon');
    if (this.handingBack) this.slotsToPass++;
    else this.handBack(slots);
  }

  /**
   * Releases a slot of `slots`, and again for each waiting message handed back on the way: a loop,
   * where releasing from `resume` would recurse once per waiting message.
   */
  private handBack(slots: QueueSlots): void {
    this.handingBack = true;
    this.slotsToPass = 1;
    try {
      while (this.slotsToPass > 0) {
        this.slotsToPass--;
        slots.release();
      }
    } finally {
      this.handingBack = false;
    }
  }

  private process(
    consumer: ConsumerChannel,
    queue: string,
    message: ConsumeMessage,
    settings: ReceiveSettings,
    slots: QueueSlots,
  ): void {
    this.active++;
    const properties = message.properties;
    const { headers, unreadableReason } = headersFromAmqp(properties);
    const incoming: {
      -readonly [K in keyof IncomingTransportMessage]: IncomingTransportMessage[K];
    } = {
      // headersFromAmqp has taken the message-id property as the id where there is one.
      messageId: headers[Headers.MessageId] ?? contentMessageId(headers, message.content),
      headers,
      body: message.content,
      queue,
    };
    if (this.options.queueType === 'quorum' && queue === this.topology.inputQueue) {
      incoming.deliveryCount = deliveryCountOf(properties);
    }
    if (unreadableReason !== undefined) incoming.unreadableReason = unreadableReason;
    received.set(incoming, message);
    let result: Promise<MessageOutcome>;
    try {
      result = settings.onMessage(incoming);
    } catch {
      result = Promise.resolve('abandon');
    }
    result.then(
      (outcome) => this.finish(consumer, slots, message, outcome),
      () => this.finish(consumer, slots, message, 'abandon'),
    );
  }

  private finish(
    consumer: ConsumerChannel,
    slots: QueueSlots,
    message: ConsumeMessage,
    outcome: MessageOutcome,
  ) {
    this.active--;
    // The instance queue's replies are acked lazily: a round trip then sends no ack frame.
    if (outcome === 'complete') consumer.complete(message, slots === this.instanceQueueSlots);
    else consumer.requeue(message);
    slots.release();
    if (this.active === 0) this.endpoint.notifyIdle();
  }

  /** Acks or requeues; on a channel that is gone there is nothing to do: the broker redelivers. */
  private settleNative(
    consumer: ConsumerChannel,
    message: ConsumeMessage,
    outcome: MessageOutcome,
  ) {
    if (outcome === 'complete') consumer.complete(message);
    else consumer.requeue(message);
  }

  private async openConsumer(settings: ReceiveSettings): Promise<void> {
    const channel = await this.endpoint.requireConnection().createChannel();
    const writes = this.endpoint.writes;
    // Per consumer (global=false): each queue gets its own window, sized from concurrency.
    const prefetch = Math.max(
      1,
      Math.round(settings.concurrency * this.options.prefetchMultiplier),
    );
    const consumer = new ConsumerChannel(
      channel,
      (work) => (writes !== undefined ? writes.defer(work) : setImmediate(work)),
      // The instance queue's acks wait for half its window at most.
      Math.max(1, Math.floor(prefetch / 2)),
    );
    channel.on('error', (error: Error) => this.endpoint.onChannelError('receive', error));
    channel.on('close', () => {
      // Its waiting messages are skipped as their turn comes: the broker redelivers them.
      consumer.open = false;
      if (this.consumer !== consumer) return;
      this.consumer = undefined;
      this.endpoint.kick();
    });
    await channel.prefetch(prefetch, false);
    for (const queue of this.ownQueues) {
      const slots = this.slots.get(queue) as QueueSlots;
      // The instance queue has one consumer, exclusively: a second live process with the same
      // instance id would take half of this one's replies; the broker refuses it instead.
      const exclusive = queue === this.topology.instanceQueue;
      let consumerTag: string;
      try {
        ({ consumerTag } = await channel.consume(
          queue,
          (message) => this.onDelivery(consumer, queue, slots, message),
          { noAck: false, exclusive },
        ));
      } catch (error) {
        if (exclusive && amqpCodeOf(error) === AmqpCode.AccessRefused) {
          this.instanceInUse = new ConfigurationError(
            `RabbitMQ: another live process consumes '${queue}': two instances of endpoint '${this.topology.endpointName}' share an instance id, and would take each other's replies. Give each process an instanceId of its own (e.g. from HOSTNAME), or leave it out for a generated one.`,
            { cause: error },
          );
          // Wakes startReceiving, which fails with it rather than waiting out its deadline.
          this.endpoint.notify();
        }
        throw error;
      }
      consumer.consumerTags.push(consumerTag);
    }
    this.instanceInUse = undefined;
    if (this.receiving !== settings) {
      // Stopped while starting.
      await channel.close().catch(() => {});
      return;
    }
    this.consumer = consumer;
  }
}
