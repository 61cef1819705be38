import type { Logger } from '@tidings/core';
import { DestinationNotFoundError } from '@tidings/core';
import type { EndpointTopology } from '@tidings/core/transport';
import type * as amqp from 'amqplib';
import type { Channel } from 'amqplib';
import { DELAY_DELIVERY_EXCHANGE, delayTopology, deliveryPattern } from './delay-levels.js';
import { AmqpCode, amqpCodeOf, mapRabbitMqError } from './errors.js';
import type { ResolvedRabbitMqOptions } from './options.js';
import type { EndpointLink, TransportShared } from './rabbitmq-endpoint.js';

/**
 * What an endpoint declares on the broker: its queues, a fanout exchange per event type bound to
 * its input queue, and the delay levels with a binding per queue delayed to. One channel runs
 * these operations, one at a time; it is opened again after a refusal closes it.
 */
export class Topology {
  private topologyChannel: Channel | undefined;
  private topologyLock: Promise<unknown> = Promise.resolve();
  /** Event exchanges declared on this connection; sends declare the others first. */
  readonly declaredExchanges = new Set<string>();
  /** Queues bound to the delay delivery exchange; a delayed send binds the others first. */
  readonly boundForDelay = new Set<string>();
  private readonly subscriptions: Set<string>;

  constructor(
    private readonly endpoint: EndpointLink,
    private readonly shared: TransportShared,
    private readonly topology: EndpointTopology,
    private readonly logger: Logger,
  ) {
    this.subscriptions = new Set(topology.subscriptions);
  }

  private get options(): ResolvedRabbitMqOptions {
    return this.shared.options;
  }

  /** Forgets what was declared (an exchange went away): sends declare it again. */
  forgetDeclared(): void {
    this.declaredExchanges.clear();
    this.boundForDelay.clear();
  }

  /** Drops the channel: its connection is gone or closing. */
  forget(): void {
    this.topologyChannel = undefined;
  }

  async subscribe(messageType: string): Promise<void> {
    this.subscriptions.add(messageType);
    const queue = this.topology.inputQueue;
    if (queue === undefined) return;
    await this.endpoint.guard(`subscribe to '${messageType}'`, async () => {
      await this.declareEventExchange(messageType);
      await this.withTopology((channel) => channel.bindQueue(queue, messageType, ''));
    });
  }

  async unsubscribe(messageType: string): Promise<void> {
    this.subscriptions.delete(messageType);
    const queue = this.topology.inputQueue;
    if (queue === undefined) return;
    await this.endpoint.guard(`unsubscribe from '${messageType}'`, () =>
      this.withTopology((channel) => channel.unbindQueue(queue, messageType, '')),
    );
  }

  private queueArguments(type: 'quorum' | 'classic'): Record<string, unknown> {
    const groupSize = this.options.quorumInitialGroupSize;
    return type === 'quorum' && groupSize !== undefined
      ? { 'x-queue-type': type, 'x-quorum-initial-group-size': groupSize }
      : { 'x-queue-type': type };
  }

  async declareTopology(): Promise<void> {
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

  async declareEventExchange(messageType: string): Promise<void> {
    await this.withTopology((channel) =>
      channel.assertExchange(messageType, 'fanout', { durable: true }),
    );
    this.declaredExchanges.add(messageType);
  }

  async prepareDelay(queue: string): Promise<void> {
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
    const channel = await this.endpoint.requireConnection().createChannel();
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
}
