import type { EndpointTopology } from '@tidings/core/transport';
import type { FailWith } from './errors.js';
import type { TopologyInstaller } from './installer.js';
import { subscriptionName, topicName } from './naming.js';
import type { ResolvedAzureServiceBusOptions } from './options.js';

/**
 * The entities one endpoint declares through the installer: its queues with their settings, and
 * a topic per event type it handles with a subscription that forwards into its input queue.
 */
export class Topology {
  private readonly installer: TopologyInstaller;

  constructor(
    private readonly topology: EndpointTopology,
    private readonly options: ResolvedAzureServiceBusOptions,
    private readonly fail: FailWith,
  ) {
    this.installer = options.installer;
  }

  /** The error queue, then the queues this endpoint reads. */
  async createQueues(): Promise<void> {
    try {
      await this.installer.ensureQueue(this.topology.errorQueue, {});
      if (this.topology.inputQueue !== undefined)
        await this.ensureOwnQueue(this.topology.inputQueue);
      if (this.topology.instanceQueue !== undefined) {
        await this.ensureOwnQueue(this.topology.instanceQueue);
      }
    } catch (error) {
      throw this.fail(error, 'creating queues');
    }
  }

  /**
   * Creates one of the queues this endpoint reads, with its settings. Async, so a custom
   * installer that throws at the call rejects instead: an attempt to create a queue again
   * then ends, and the next one can start.
   */
  async ensureOwnQueue(queue: string): Promise<void> {
    const { options } = this;
    const lockDuration =
      options.lockDurationMs === undefined ? {} : { lockDurationMs: options.lockDurationMs };
    return this.installer.ensureQueue(
      queue,
      queue === this.topology.instanceQueue
        ? {
            maxDeliveryCount: options.maxDeliveryCount,
            autoDeleteOnIdleMs: options.instanceQueueAutoDeleteOnIdleMs,
            ...lockDuration,
          }
        : {
            maxDeliveryCount: options.maxDeliveryCount,
            ...(options.duplicateDetectionWindowMs === undefined
              ? {}
              : { duplicateDetectionWindowMs: options.duplicateDetectionWindowMs }),
            ...lockDuration,
          },
    );
  }

  async subscribe(messageType: string): Promise<void> {
    const inputQueue = this.topology.inputQueue;
    if (inputQueue === undefined) return;
    const topic = topicName(messageType);
    try {
      await this.installer.ensureTopic(topic);
      // The subscription forwards into the endpoint's queue: one receiver per endpoint,
      // and the queue's concurrency, settlement and dead-lettering cover events too.
      await this.installer.ensureSubscription(topic, subscriptionName(inputQueue), {
        forwardTo: inputQueue,
        maxDeliveryCount: this.options.maxDeliveryCount,
      });
    } catch (error) {
      throw this.fail(error, `subscribing to '${messageType}'`, topic);
    }
  }

  async unsubscribe(messageType: string): Promise<void> {
    const inputQueue = this.topology.inputQueue;
    if (inputQueue === undefined) return;
    try {
      await this.installer.deleteSubscription(topicName(messageType), subscriptionName(inputQueue));
    } catch (error) {
      throw this.fail(error, `unsubscribing from '${messageType}'`);
    }
  }
}
