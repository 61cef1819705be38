import {
  ConfigurationError,
  DestinationNotFoundError,
  type EndpointTopology,
  Headers,
  type IncomingTransportMessage,
  type Logger,
  type MessageOutcome,
  type ReceiveSettings,
  type TransportEndpoint,
  TransportError,
  type TransportOperation,
  TransportUnavailableError,
} from '@tidings/core';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Message } from 'amqplib';
import * as amqp from 'amqplib';
import {
  amqpPropertiesFor,
  contentMessageId,
  copiedAmqpProperties,
  deliveryCountOf,
  headersFromAmqp,
} from './amqp-headers.js';
import { type BrokerNode, NodeCursor } from './broker-nodes.js';
import { ConsumerChannel } from './consumer-channel.js';
import {
  DELAY_DELIVERY_EXCHANGE,
  delayLevelName,
  delayRoutingKey,
  delaySeconds,
  delayTopology,
  deliveryPattern,
  firstDelayLevel,
  MAX_DELAY_SECONDS,
} from './delay-levels.js';
import { AmqpCode, amqpCodeOf, isClosedError, isNackError, mapRabbitMqError } from './errors.js';
import type { ResolvedRabbitMqOptions } from './options.js';
import { WriteBatch } from './write-batch.js';

/** What every endpoint of one transport shares. */
export interface TransportShared {
  readonly options: ResolvedRabbitMqOptions;
  /** The cluster's nodes (one for a single broker). */
  readonly nodes: readonly BrokerNode[];
  readonly secrets: readonly (string | undefined)[];
  readonly socketOptions: Record<string, unknown>;
  /** The delay levels, declared once per transport (they are durable and shared). */
  delayTopology: Promise<void> | undefined;
}

interface Waiting {
  readonly consumer: ConsumerChannel;
  readonly queue: string;
  readonly message: ConsumeMessage;
}

/**
 * One queue's handling slots: the input and instance queues each get `concurrency`, so replies
 * never wait behind handlers that await requests.
 */
interface QueueSlots {
  active: number;
  waiting: Waiting[];
}

/** The broker returned a mandatory message: nothing is bound to take it. */
class ReturnedError extends Error {}

const CLOSE_WAIT_MS = 5_000;
/** A send gives up after this many lost confirms in a row, even within its deadline. */
const MAX_SEND_ATTEMPTS = 20;
/** The longest pause before sending a nacked message again. */
const NACK_RETRY_MAX_MS = 1_000;
/** Nacks in a row for one send after which its channel is replaced. */
const NACKS_BEFORE_NEW_CHANNEL = 3;

/**
 * One endpoint's connection: a confirm channel for sending, a channel for topology, and a
 * consumer channel. Any of them (or the connection) may be lost; one recovery loop puts back
 * whatever is missing, with backoff, and sends wait for it up to `unavailableTimeoutMs`.
 */
export class RabbitMqEndpoint implements TransportEndpoint {
  private connection: ChannelModel | undefined;
  private publisher: ConfirmChannel | undefined;
  /** Express messages (ADR 13) go on a channel without confirms: the broker sends nothing back. */
  private expressChannel: Channel | undefined;
  /** The connection's writes, one per pass. */
  private writes: WriteBatch | undefined;
  private topologyChannel: Channel | undefined;
  private consumer: ConsumerChannel | undefined;
  /** Consumer channels stopped but kept open so in-flight messages can still be settled. */
  private retired: ConsumerChannel[] = [];
  private topologyDeclared = false;
  private closed = false;
  private receiving: ReceiveSettings | undefined;
  private recovering: Promise<void> | undefined;
  private waiters: Array<() => void> = [];
  private lastError: unknown;
  /** Set while the broker refuses this instance's exclusive consumer: the id is in use. */
  private instanceInUse: ConfigurationError | undefined;
  private wasConnected = false;
  private readonly declaredExchanges = new Set<string>();
  private readonly boundForDelay = new Set<string>();
  private readonly subscriptions: Set<string>;
  private topologyLock: Promise<unknown> = Promise.resolve();
  private drainWaiter: Promise<void> | undefined;
  /** Returned (unroutable) messages whose confirm has not arrived yet, by routing key and id. */
  private readonly returned = new Map<string, number>();
  private readonly ownQueues: string[];
  private readonly sleeper = new AbortController();
  /** Messages being handled, across the queues. */
  private active = 0;
  private readonly slots = new Map<string, QueueSlots>();
  /** The instance queue's, if any. */
  private readonly instanceSlots: QueueSlots | undefined;
  private pendingSends = 0;
  private idle: Array<() => void> = [];
  private readonly nodes: NodeCursor;
  /** The last connect found no node answering (set while connecting). */
  private connectRefused = false;

  constructor(
    private readonly shared: TransportShared,
    private readonly topology: EndpointTopology,
    private readonly logger: Logger,
  ) {
    this.subscriptions = new Set(topology.subscriptions);
    this.ownQueues = [topology.inputQueue, topology.instanceQueue].filter(
      (queue): queue is string => queue !== undefined,
    );
    for (const queue of this.ownQueues) this.slots.set(queue, { active: 0, waiting: [] });
    this.instanceSlots =
      topology.instanceQueue === undefined ? undefined : this.slots.get(topology.instanceQueue);
    this.nodes = new NodeCursor(shared.nodes, shared.options.nodeOrder);
  }

  private get options(): ResolvedRabbitMqOptions {
    return this.shared.options;
  }

  /** Connects and declares the topology; rejects (after releasing everything) if it cannot. */
  async open(): Promise<void> {
    try {
      await this.establish();
    } catch (error) {
      this.closed = true;
      await this.connection?.close().catch(() => {});
      throw mapRabbitMqError(error, {
        operation: `open endpoint '${this.topology.endpointName}' on ${this.nodes.description}`,
        secrets: this.shared.secrets,
      });
    }
  }

  // sending

  async dispatch(operations: readonly TransportOperation[]): Promise<void> {
    if (operations.length === 1) return this.send(operations[0] as TransportOperation);
    await Promise.all(operations.map((operation) => this.send(operation)));
  }

  private async send(operation: TransportOperation): Promise<void> {
    const { destination, message } = operation;
    const body = message.body;
    const content = Buffer.isBuffer(body)
      ? body
      : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    // Express (ADR 13): transient. Still mandatory: a return is logged, not waited for.
    const express = operation.express === true;
    const copied = operation.copyOf && copyable(operation.copyOf, message.headers);
    const properties: amqp.Options.Publish = {
      persistent: !express && !this.isTransientRequest(operation),
      mandatory: destination.kind === 'queue',
      ...(copied ?? amqpPropertiesFor(message.headers)),
    };
    properties.messageId ??= message.messageId;
    const seconds =
      operation.delayMs !== undefined && operation.delayMs > 0
        ? delaySeconds(operation.delayMs)
        : 0;

    if (destination.kind === 'publish') {
      const exchange = destination.messageType;
      if (seconds > 0) {
        throw new TransportError(
          `RabbitMQ: delayed publish of '${exchange}' is not supported; delay a send to a queue instead.`,
        );
      }
      return this.publishReliably(exchange, '', content, properties, exchange, express, () =>
        this.declaredExchanges.has(exchange) ? undefined : this.declareEventExchange(exchange),
      );
    }
    const queue = destination.queue;
    if (seconds === 0) {
      return this.publishReliably('', queue, content, properties, queue, express);
    }
    if (seconds > MAX_DELAY_SECONDS) {
      throw new TransportError(
        `RabbitMQ: a delay of ${operation.delayMs} ms is longer than the longest supported, ${MAX_DELAY_SECONDS} s.`,
      );
    }
    return this.publishReliably(
      delayLevelName(firstDelayLevel(seconds)),
      delayRoutingKey(seconds, queue),
      content,
      properties,
      queue,
      express,
      () => (this.boundForDelay.has(queue) ? undefined : this.prepareDelay(queue)),
    );
  }

  /**
   * A request only an in-memory callback waits for (ADR 13) travels transient but confirmed,
   * unless `persistentCallbackRequests`. Not its copies (delayed retries, the error queue), which
   * stay durable, nor a delayed request, which waits in a delay queue.
   */
  private isTransientRequest(operation: TransportOperation): boolean {
    const headers = operation.message.headers;
    return (
      headers[Headers.ReplyDurability] === 'express' &&
      !this.options.persistentCallbackRequests &&
      operation.copyOf === undefined &&
      !((operation.delayMs ?? 0) > 0) &&
      headers[Headers.DelayedRetries] === undefined &&
      headers[Headers.Intent] === 'send'
    );
  }

  /**
   * Publishes and waits for the confirm. A confirm lost with its channel or connection is sent
   * again on the next one (at-least-once), until `unavailableTimeoutMs` has passed. An express
   * message is done once written to the connection: its confirm is not waited for, and a loss
   * after the write goes unnoticed (ADR 13).
   */
  private async publishReliably(
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties: amqp.Options.Publish,
    destination: string,
    express: boolean,
    prepare?: () => Promise<void> | undefined,
  ): Promise<void> {
    const deadline = Date.now() + this.options.unavailableTimeoutMs;
    this.pendingSends++;
    let nacks = 0;
    let used: ConfirmChannel | undefined;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const ready = prepare?.();
          if (ready !== undefined) await ready;
          if (this.drainWaiter !== undefined) await this.drainWaiter;
          if (express) {
            const channel =
              this.expressChannel ?? (await this.waitFor(() => this.expressChannel, deadline));
            this.publishExpress(channel, exchange, routingKey, content, properties);
            return;
          }
          const channel = this.publisher ?? (await this.waitFor(() => this.publisher, deadline));
          used = channel;
          await this.publishOnce(channel, exchange, routingKey, content, properties);
          return;
        } catch (error) {
          if (error instanceof ReturnedError) throw new DestinationNotFoundError(destination);
          const nacked = isNackError(error);
          if (
            !this.closed &&
            (nacked || isClosedError(error)) &&
            attempt < MAX_SEND_ATTEMPTS &&
            Date.now() < deadline
          ) {
            if (nacked) {
              // A nack comes from a queue without a leader for the moment (a node left a
              // cluster): give the election time. A channel that keeps nacking may hold a stale
              // view of the queue: the next attempt goes on a new one.
              this.logger.debug(
                `RabbitMQ: the broker nacked a send to '${destination}'; sending again`,
                {
                  attempt,
                },
              );
              if (++nacks >= NACKS_BEFORE_NEW_CHANNEL && used === this.publisher) {
                this.replacePublisher();
              }
              await this.sleep(Math.min(NACK_RETRY_MAX_MS, 25 * 2 ** attempt));
            }
            continue;
          }
          throw mapRabbitMqError(error, {
            operation: `send to '${destination}'`,
            destination,
            secrets: this.shared.secrets,
          });
        }
      }
    } finally {
      if (--this.pendingSends === 0) this.notifyIdle();
    }
  }

  private publishOnce(
    channel: ConfirmChannel,
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties: amqp.Options.Publish,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let writable: boolean;
      try {
        writable = channel.publish(exchange, routingKey, content, properties, (error: unknown) => {
          if (error) reject(error);
          else if (this.returned.size > 0 && this.takeReturned(routingKey, properties.messageId)) {
            reject(new ReturnedError());
          } else resolve();
        });
      } catch (error) {
        reject(error);
        return;
      }
      if (!writable) this.holdUntilDrained(channel);
    });
  }

  /** Writes an express message; throws only if the channel is closed at the call. */
  private publishExpress(
    channel: Channel,
    exchange: string,
    routingKey: string,
    content: Buffer,
    properties: amqp.Options.Publish,
  ): void {
    if (!channel.publish(exchange, routingKey, content, properties)) this.holdUntilDrained(channel);
  }

  /** The socket buffer is full: hold later sends until it drains (backpressure). */
  private holdUntilDrained(channel: Channel): void {
    if (this.drainWaiter !== undefined) return;
    this.logger.debug('RabbitMQ: write buffer full; sends wait for it to drain');
    this.drainWaiter = new Promise<void>((release) => {
      const done = () => {
        channel.off('drain', done);
        channel.off('close', done);
        this.drainWaiter = undefined;
        release();
      };
      channel.on('drain', done);
      channel.on('close', done);
    });
  }

  /**
   * The broker sends basic.return before the confirm of the same message, on the same channel:
   * remember returned messages until their confirm arrives (nothing to track while none is).
   */
  private onReturn(message: Message): void {
    const key = `${message.fields.routingKey}\n${message.properties.messageId}`;
    this.returned.set(key, (this.returned.get(key) ?? 0) + 1);
  }

  private takeReturned(routingKey: string, messageId: unknown): boolean {
    const key = `${routingKey}\n${messageId}`;
    const count = this.returned.get(key);
    if (count === undefined) return false;
    if (count <= 1) this.returned.delete(key);
    else this.returned.set(key, count - 1);
    return true;
  }

  // receiving

  async startReceiving(settings: ReceiveSettings): Promise<void> {
    if (this.closed) throw new TransportUnavailableError('RabbitMQ: the endpoint is closed.');
    if (this.receiving !== undefined || this.ownQueues.length === 0) return;
    this.receiving = settings;
    if (this.consumer !== undefined) {
      this.retired.push(this.consumer);
      this.consumer = undefined;
    }
    this.kick();
    await this.waitFor(() => {
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
    // Prefetched messages no handler has seen go back to the queue now.
    for (const slots of this.slots.values()) {
      const waiting = slots.waiting;
      slots.waiting = [];
      for (const item of waiting) this.settleNative(item.consumer, item.message, 'abandon');
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
      if (this.consumer === consumer && !this.closed) {
        this.logger.warn(
          `RabbitMQ: consumer of '${queue}' was cancelled by the broker; recreating it`,
        );
        this.topologyDeclared = false;
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
    if (slots.active < settings.concurrency) {
      this.process(consumer, queue, message, settings, slots);
    } else slots.waiting.push({ consumer, queue, message });
  }

  private process(
    consumer: ConsumerChannel,
    queue: string,
    message: ConsumeMessage,
    settings: ReceiveSettings,
    slots: QueueSlots,
  ): void {
    this.active++;
    slots.active++;
    const properties = message.properties;
    const { headers, unreadableReason } = headersFromAmqp(properties);
    const incoming: IncomingTransportMessage = {
      // headersFromAmqp has taken the message-id property as the id where there is one.
      messageId: headers[Headers.MessageId] ?? contentMessageId(headers, message.content),
      headers,
      body: message.content,
      queue,
      ...(this.options.queueType === 'quorum' && queue === this.topology.inputQueue
        ? { deliveryCount: deliveryCountOf(properties) }
        : {}),
      ...(unreadableReason !== undefined ? { unreadableReason } : {}),
    };
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
    slots.active--;
    // The instance queue's replies are acked lazily: a round trip then sends no ack frame.
    if (outcome === 'complete') consumer.complete(message, slots === this.instanceSlots);
    else consumer.requeue(message);
    const settings = this.receiving;
    while (settings !== undefined && slots.active < settings.concurrency) {
      const next = slots.waiting.shift();
      if (next === undefined) break;
      if (next.consumer.open) {
        this.process(next.consumer, next.queue, next.message, settings, slots);
      }
    }
    if (this.active === 0) this.notifyIdle();
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

  // subscriptions

  async subscribe(messageType: string): Promise<void> {
    this.subscriptions.add(messageType);
    const queue = this.topology.inputQueue;
    if (queue === undefined) return;
    await this.guard(`subscribe to '${messageType}'`, async () => {
      await this.declareEventExchange(messageType);
      await this.withTopology((channel) => channel.bindQueue(queue, messageType, ''));
    });
  }

  async unsubscribe(messageType: string): Promise<void> {
    this.subscriptions.delete(messageType);
    const queue = this.topology.inputQueue;
    if (queue === undefined) return;
    await this.guard(`unsubscribe from '${messageType}'`, () =>
      this.withTopology((channel) => channel.unbindQueue(queue, messageType, '')),
    );
  }

  // closing

  async close(): Promise<void> {
    if (this.closed) return;
    await this.stopReceiving();
    if (this.active > 0 || this.pendingSends > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_WAIT_MS);
        this.idle.push(() => {
          if (this.active === 0 && this.pendingSends === 0) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    }
    // Coalesced acks still waiting for their pass go out before the connection closes.
    this.consumer?.flush();
    for (const retired of this.retired) retired.flush();
    this.closed = true;
    this.sleeper.abort();
    this.notify();
    const connection = this.connection;
    this.connection = undefined;
    this.publisher = undefined;
    this.expressChannel = undefined;
    this.topologyChannel = undefined;
    this.consumer = undefined;
    if (connection !== undefined) await connection.close().catch(() => {});
    await this.recovering?.catch(() => {});
  }

  private notifyIdle(): void {
    const idle = this.idle;
    this.idle = [];
    for (const check of idle) check();
    // Waiters whose condition is not yet met registered again in their check.
    if (this.active > 0 || this.pendingSends > 0) this.idle.push(...idle);
  }

  // recovery

  private incomplete(): boolean {
    return (
      this.connection === undefined ||
      !this.topologyDeclared ||
      this.publisher === undefined ||
      this.expressChannel === undefined ||
      (this.receiving !== undefined && this.consumer === undefined)
    );
  }

  /** Starts the recovery loop unless it runs already. */
  private kick(): void {
    if (this.closed || this.recovering !== undefined) return;
    this.recovering = this.recover().finally(() => {
      this.recovering = undefined;
      if (!this.closed && this.incomplete()) this.kick();
    });
  }

  private async recover(): Promise<void> {
    let attempt = 0;
    let retriedAtOnce = false;
    while (!this.closed && this.incomplete()) {
      this.connectRefused = false;
      const reconnecting = this.wasConnected && this.connection === undefined;
      try {
        await this.establish();
        if (attempt > 0 || !this.wasConnected || reconnecting) {
          this.logger.info(`RabbitMQ: endpoint '${this.topology.endpointName}' recovered`, {
            url: this.nodes.currentNode.redactedUrl,
            attempts: attempt + 1,
          });
        }
        attempt = 0;
        retriedAtOnce = false;
      } catch (error) {
        this.lastError = error;
        // Channels close before their connection: recovery may have begun on a connection that
        // was going. Its loss is news, not a refusal: try the nodes once more before backing off.
        if (this.connection === undefined && !this.connectRefused && !retriedAtOnce) {
          retriedAtOnce = true;
          continue;
        }
        attempt++;
        // A queue or exchange vanished under a consume or bind: declare the topology again.
        if (amqpCodeOf(error) === AmqpCode.NotFound) this.topologyDeclared = false;
        const delay = Math.min(
          this.options.reconnectMaxDelayMs,
          this.options.reconnectInitialDelayMs * 2 ** (attempt - 1),
        );
        const mapped =
          this.instanceInUse ??
          mapRabbitMqError(error, {
            operation: `recover endpoint '${this.topology.endpointName}' on ${this.nodes.description}`,
            secrets: this.shared.secrets,
          });
        (attempt <= 3 ? this.logger.warn : this.logger.debug).call(
          this.logger,
          `${mapped.message} Retrying in ${Math.round(delay)} ms.`,
          { attempt },
        );
        await this.sleep(delay * (0.8 + Math.random() * 0.4));
      }
    }
    this.notify();
  }

  /** Puts back whatever is missing: connection, topology, publisher, consumer. */
  private async establish(): Promise<void> {
    if (this.connection === undefined) await this.connect();
    if (!this.topologyDeclared) {
      await this.declareTopology();
      this.topologyDeclared = true;
    }
    if (this.publisher === undefined) await this.openPublisher();
    if (this.expressChannel === undefined) await this.openExpressChannel();
    const settings = this.receiving;
    if (settings !== undefined && this.consumer === undefined) await this.openConsumer(settings);
    this.wasConnected = true;
    this.notify();
  }

  private async connect(): Promise<void> {
    // Every node in turn: a cluster keeps serving while one is down (backoff only if none answers).
    this.connectRefused = true;
    const connection = await this.nodes.connect((node) =>
      amqp.connect(node.connectUrl, {
        ...this.shared.socketOptions,
        clientProperties: {
          connection_name: `${this.options.connectionName}:${this.topology.endpointName}`,
        },
      }),
    );
    this.connectRefused = false;
    if (this.closed) {
      await connection.close().catch(() => {});
      throw new TransportUnavailableError('RabbitMQ: the endpoint is closed.');
    }
    connection.on('error', (error: Error) => {
      this.logger.debug('RabbitMQ: connection error', {
        error: mapRabbitMqError(error, {
          operation: 'keep the connection',
          secrets: this.shared.secrets,
        }).message,
      });
    });
    connection.on('blocked', (reason: string) => {
      this.logger.warn(`RabbitMQ: the broker blocked publishing (${reason}); sends wait`);
    });
    connection.on('close', (error?: Error) => {
      if (this.connection !== connection) return;
      this.connection = undefined;
      this.publisher = undefined;
      this.expressChannel = undefined;
      this.writes = undefined;
      this.topologyChannel = undefined;
      if (this.consumer !== undefined) this.consumer.open = false;
      this.consumer = undefined;
      for (const retired of this.retired) retired.open = false;
      this.retired = [];
      for (const slots of this.slots.values()) slots.waiting = [];
      this.topologyDeclared = false;
      if (this.closed) return;
      this.nodes.lost();
      this.logger.warn(
        `RabbitMQ: connection of endpoint '${this.topology.endpointName}' lost; reconnecting`,
        {
          url: this.nodes.currentNode.redactedUrl,
          ...(error
            ? {
                error: mapRabbitMqError(error, {
                  operation: 'keep the connection',
                  secrets: this.shared.secrets,
                }).message,
              }
            : {}),
        },
      );
      this.kick();
    });
    this.writes = WriteBatch.attach(connection);
    this.connection = connection;
  }

  private requireConnection(): ChannelModel {
    const connection = this.connection;
    if (connection === undefined) throw new Error('connection closed');
    return connection;
  }

  private async openPublisher(): Promise<void> {
    const channel = await this.requireConnection().createConfirmChannel();
    channel.on('error', (error: Error) => this.onChannelError('send', error));
    channel.on('return', (message: Message) => this.onReturn(message));
    channel.on('close', () => {
      if (this.publisher !== channel) return;
      this.publisher = undefined;
      this.returned.clear();
      this.kick();
    });
    this.publisher = channel;
  }

  /** Closes the send channel; sends wait for the new one recovery opens (none use the closing one). */
  private replacePublisher(): void {
    const channel = this.publisher;
    if (channel === undefined) return;
    this.publisher = undefined;
    this.returned.clear();
    channel.close().catch(() => {});
    this.kick();
  }

  private async openExpressChannel(): Promise<void> {
    const channel = await this.requireConnection().createChannel();
    channel.on('error', (error: Error) => this.onChannelError('express send', error));
    // Nobody waits for an express message: a return (its queue is gone, say) is only logged.
    channel.on('return', (message: Message) => {
      this.logger.warn(
        `RabbitMQ: dropped an express message to '${message.fields.routingKey}': no queue takes it (a reply whose requester has gone, say)`,
        { messageId: message.properties.messageId },
      );
    });
    channel.on('close', () => {
      if (this.expressChannel !== channel) return;
      this.expressChannel = undefined;
      this.kick();
    });
    this.expressChannel = channel;
  }

  private async openConsumer(settings: ReceiveSettings): Promise<void> {
    const channel = await this.requireConnection().createChannel();
    const writes = this.writes;
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
    channel.on('error', (error: Error) => this.onChannelError('receive', error));
    channel.on('close', () => {
      consumer.open = false;
      for (const slots of this.slots.values()) {
        slots.waiting = slots.waiting.filter((item) => item.consumer !== consumer);
      }
      if (this.consumer !== consumer) return;
      this.consumer = undefined;
      this.kick();
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
          this.notify();
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

  private onChannelError(purpose: string, error: Error): void {
    const code = amqpCodeOf(error);
    // A 404 on the send channel means an exchange went away: declare it again next time.
    if (code === AmqpCode.NotFound) {
      this.declaredExchanges.clear();
      this.boundForDelay.clear();
      this.topologyDeclared = false;
    }
    this.logger.warn(`RabbitMQ: ${purpose} channel closed by the broker; reopening it`, {
      error: mapRabbitMqError(error, { operation: purpose, secrets: this.shared.secrets }).message,
    });
  }

  // topology

  private queueArguments(type: 'quorum' | 'classic'): Record<string, unknown> {
    const groupSize = this.options.quorumInitialGroupSize;
    return type === 'quorum' && groupSize !== undefined
      ? { 'x-queue-type': type, 'x-quorum-initial-group-size': groupSize }
      : { 'x-queue-type': type };
  }

  private async declareTopology(): Promise<void> {
    const { inputQueue, instanceQueue, errorQueue } = this.topology;
    const durableQueue = { durable: true, arguments: this.queueArguments(this.options.queueType) };
    if (inputQueue !== undefined) await this.declareQueue(inputQueue, durableQueue);
    if (errorQueue !== inputQueue) await this.declareQueue(errorQueue, durableQueue);
    if (instanceQueue !== undefined) {
      // Replies wait in memory only: a reply is worth nothing once its requester is gone, and
      // skipping the disk keeps request/reply latency at the broker's in-memory speed. A broker
      // restart drops the queue; the endpoint declares it again when it reconnects.
      await this.declareQueue(instanceQueue, {
        durable: false,
        arguments: {
          ...this.queueArguments('classic'),
          'x-expires': this.options.instanceQueueExpiresMs,
        },
      });
    }
    if (inputQueue !== undefined) {
      for (const messageType of this.subscriptions) {
        await this.declareEventExchange(messageType);
        await this.withTopology((channel) => channel.bindQueue(inputQueue, messageType, ''));
      }
    }
  }

  /**
   * Declares a queue; one that already exists with other arguments (declared by another
   * version, or with another queue type) is used as it is instead of failing with 406.
   */
  private async declareQueue(name: string, options: amqp.Options.AssertQueue): Promise<void> {
    try {
      await this.withTopology((channel) => channel.assertQueue(name, options));
    } catch (error) {
      if (amqpCodeOf(error) !== AmqpCode.PreconditionFailed) throw error;
      await this.withTopology((channel) => channel.checkQueue(name));
      this.logger.warn(`RabbitMQ: queue '${name}' exists with other settings; using it as it is`);
    }
  }

  private async declareEventExchange(messageType: string): Promise<void> {
    await this.withTopology((channel) =>
      channel.assertExchange(messageType, 'fanout', { durable: true }),
    );
    this.declaredExchanges.add(messageType);
  }

  private async prepareDelay(queue: string): Promise<void> {
    let declared = this.shared.delayTopology;
    if (declared === undefined) {
      declared = this.declareDelayTopology();
      this.shared.delayTopology = declared;
      declared.catch(() => {
        if (this.shared.delayTopology === declared) this.shared.delayTopology = undefined;
      });
    }
    await declared;
    try {
      await this.withTopology((channel) =>
        channel.bindQueue(queue, DELAY_DELIVERY_EXCHANGE, deliveryPattern(queue)),
      );
    } catch (error) {
      if (amqpCodeOf(error) === AmqpCode.NotFound) throw new DestinationNotFoundError(queue);
      throw error;
    }
    this.boundForDelay.add(queue);
  }

  private async declareDelayTopology(): Promise<void> {
    const plan = delayTopology();
    for (const exchange of plan.exchanges) {
      await this.withTopology((channel) =>
        channel.assertExchange(exchange, 'topic', { durable: true }),
      );
    }
    for (const queue of plan.queues) {
      await this.declareQueue(queue.name, {
        durable: true,
        arguments: {
          ...this.queueArguments('classic'),
          'x-message-ttl': queue.ttlMs,
          'x-dead-letter-exchange': queue.deadLetterExchange,
        },
      });
    }
    for (const binding of plan.queueBindings) {
      await this.withTopology((channel) =>
        channel.bindQueue(binding.queue, binding.exchange, binding.pattern),
      );
    }
    for (const binding of plan.exchangeBindings) {
      await this.withTopology((channel) =>
        channel.bindExchange(binding.destination, binding.source, binding.pattern),
      );
    }
  }

  /**
   * Runs one topology operation on the topology channel, one at a time: a refused operation
   * closes its channel, and must not take the others down with it.
   */
  private withTopology<T>(operation: (channel: Channel) => Promise<T>): Promise<T> {
    const run = this.topologyLock.then(async () => {
      const channel = await this.topologyChannelFor();
      try {
        return await operation(channel);
      } catch (error) {
        if (amqpCodeOf(error) !== undefined && this.topologyChannel === channel) {
          this.topologyChannel = undefined;
        }
        throw error;
      }
    });
    this.topologyLock = run.catch(() => {});
    return run;
  }

  private async topologyChannelFor(): Promise<Channel> {
    if (this.topologyChannel !== undefined) return this.topologyChannel;
    const channel = await this.requireConnection().createChannel();
    channel.on('error', (error: Error) => {
      this.logger.debug('RabbitMQ: topology operation refused', {
        error: mapRabbitMqError(error, {
          operation: 'change topology',
          secrets: this.shared.secrets,
        }).message,
      });
    });
    channel.on('close', () => {
      if (this.topologyChannel === channel) this.topologyChannel = undefined;
    });
    this.topologyChannel = channel;
    return channel;
  }

  /** Runs a topology change, waiting for a lost connection to come back first. */
  private async guard(operation: string, run: () => Promise<unknown>): Promise<void> {
    const deadline = Date.now() + this.options.unavailableTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        if (this.connection === undefined) await this.waitFor(() => this.connection, deadline);
        await run();
        return;
      } catch (error) {
        if (!this.closed && isClosedError(error) && attempt < 5 && Date.now() < deadline) continue;
        throw mapRabbitMqError(error, { operation, secrets: this.shared.secrets });
      }
    }
  }

  // waiting

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Waits until `get` returns something, the endpoint closes, or the deadline passes. */
  private async waitFor<T>(get: () => T | undefined, deadline: number): Promise<T> {
    for (;;) {
      const value = get();
      if (value !== undefined) return value;
      if (this.closed) throw new TransportUnavailableError('RabbitMQ: the endpoint is closed.');
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        const last =
          this.lastError === undefined
            ? ''
            : ` Last error: ${mapRabbitMqError(this.lastError, { operation: 'connect', secrets: this.shared.secrets }).message}`;
        throw new TransportUnavailableError(
          `RabbitMQ: ${this.nodes.description} was unavailable for ${this.options.unavailableTimeoutMs} ms.${last}`,
        );
      }
      this.kick();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, remaining);
        function wake() {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.push(wake);
      });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.sleeper.signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      const signal = this.sleeper.signal;
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done);
    });
  }
}

/** The native message behind each message this transport handed over, for copies of it. */
const received = new WeakMap<IncomingTransportMessage, ConsumeMessage>();

/** A copy's properties from the received message as it came, or undefined to send it afresh. */
function copyable(
  copyOf: IncomingTransportMessage,
  headers: Readonly<Record<string, string>>,
): ReturnType<typeof copiedAmqpProperties> {
  const native = received.get(copyOf);
  if (native === undefined) return undefined;
  return copiedAmqpProperties(native.properties, copyOf.headers, headers);
}
