import { ConfigurationError, type Logger } from '@tidings/core';
import type {
  EndpointTopology,
  ReceiveSettings,
  TransportContext,
  TransportEndpoint,
  TransportOperation,
} from '@tidings/core/transport';
import { checkQueueFolderName } from './file-names.js';
import type { FileStore } from './file-store.js';
import type { Housekeeping } from './housekeeping.js';
import { Receiver } from './receiver.js';
import type { Sender } from './sender.js';

/** What the endpoints of one learning transport share. */
export interface LearningEndpointHost {
  readonly store: FileStore;
  /** Names this transport's claims and heartbeat: the process id, and which transport in it. */
  readonly owner: string;
  readonly pollIntervalMs: number;
  readonly sender: Sender;
  readonly housekeeping: Housekeeping;
  /** The transport's logger, for what is not this endpoint's alone. */
  readonly logger: () => Logger | undefined;
}

/**
 * One endpoint on the learning transport: its queue folders and subscriptions, a `Receiver` per
 * queue it reads, its dispatches through the transport's `Sender`, and its share of housekeeping.
 */
export class LearningEndpoint implements TransportEndpoint {
  /** One per queue: the input and instance queues each get the full concurrency. */
  private current: Receiver[] = [];
  private readonly retired: Receiver[] = [];
  /** From `startReceiving` to `close`, which then stops what it started (housekeeping too). */
  private started = false;
  /** Dispatches under way: close waits for them, so none is cut off halfway. */
  private readonly inFlightDispatches = new Set<Promise<void>>();
  private readonly ownQueues: string[];

  private constructor(
    private readonly host: LearningEndpointHost,
    private readonly topology: EndpointTopology,
    private readonly context: TransportContext,
  ) {
    this.ownQueues = [topology.instanceQueue, topology.inputQueue].filter(
      (queue): queue is string => queue !== undefined,
    );
  }

  /** Creates the endpoint's queue folders and its subscriptions. */
  static async open(
    host: LearningEndpointHost,
    topology: EndpointTopology,
    context: TransportContext,
  ): Promise<LearningEndpoint> {
    const { store } = host;
    for (const queue of [topology.inputQueue, topology.instanceQueue, topology.errorQueue]) {
      if (queue !== undefined) checkQueueFolderName(queue);
    }
    if (topology.inputQueue !== undefined) await store.ensureQueue(topology.inputQueue, false);
    if (topology.instanceQueue !== undefined) {
      await store.ensureQueue(topology.instanceQueue, true);
    }
    await store.ensureQueue(topology.errorQueue, false);
    const inputQueue = topology.inputQueue;
    if (inputQueue !== undefined) {
      for (const messageType of topology.subscriptions) {
        await store.subscribe(messageType, inputQueue);
      }
    }
    return new LearningEndpoint(host, topology, context);
  }

  dispatch(operations: readonly TransportOperation[]): Promise<void> {
    const dispatching = this.host.sender.dispatch(operations);
    const tracked = dispatching.then(
      () => {},
      () => {},
    );
    this.inFlightDispatches.add(tracked);
    void tracked.then(() => this.inFlightDispatches.delete(tracked));
    return dispatching;
  }

  async startReceiving(receiveSettings: ReceiveSettings): Promise<void> {
    const { host, topology } = this;
    if (this.current.some((receiver) => receiver.isActive)) return;
    // A stopped receiver may still be settling messages: keep it until close.
    this.retired.push(...this.current);
    await host.housekeeping.start();
    const instanceQueue = topology.instanceQueue;
    if (instanceQueue !== undefined) {
      // Two live processes on one instance id would take each other's replies.
      const holder = await host.store.holdInstanceQueue(instanceQueue, host.owner, (other) =>
        host.housekeeping.isAbandoned(other, Number(other.split('-')[0]), Date.now()),
      );
      if (holder !== undefined) {
        if (host.housekeeping.receivers.size === 0) await host.housekeeping.stop();
        throw new ConfigurationError(
          `Learning transport: another live process (${holder}) receives from '${instanceQueue}': two instances of endpoint '${topology.endpointName}' share an instance id, and would take each other's replies. Give each process an instanceId of its own, or leave it out for a generated one.`,
        );
      }
      host.housekeeping.instanceQueues.add(instanceQueue);
    }
    this.started = true;
    const receiverHost = {
      store: host.store,
      owner: host.owner,
      logger: this.context.logger,
      pollIntervalMs: host.pollIntervalMs,
    };
    this.current = this.ownQueues.map(
      (queue) => new Receiver(receiverHost, queue, receiveSettings),
    );
    for (const receiver of this.current) {
      host.housekeeping.receivers.add(receiver);
      receiver.start();
    }
  }

  async stopReceiving(): Promise<void> {
    for (const receiver of this.current) receiver.stop();
  }

  async subscribe(messageType: string): Promise<void> {
    const inputQueue = this.topology.inputQueue;
    if (inputQueue !== undefined) await this.host.store.subscribe(messageType, inputQueue);
  }

  async unsubscribe(messageType: string): Promise<void> {
    const inputQueue = this.topology.inputQueue;
    if (inputQueue !== undefined) await this.host.store.unsubscribe(messageType, inputQueue);
  }

  async close(): Promise<void> {
    const { host } = this;
    await Promise.all(this.inFlightDispatches);
    if (this.started) {
      this.started = false;
      const closing = [...this.retired.splice(0), ...this.current];
      this.current = [];
      await Promise.all(closing.map((r) => r.close()));
      for (const closed of closing) host.housekeeping.receivers.delete(closed);
      if (host.housekeeping.receivers.size === 0) await host.housekeeping.stop();
    }
    const instanceQueue = this.topology.instanceQueue;
    if (instanceQueue === undefined) return;
    host.housekeeping.instanceQueues.delete(instanceQueue);
    await host.store.releaseInstanceQueue(instanceQueue, host.owner);
    // A clean stop leaves no empty folder behind (a generated instance id is never used
    // again); a queue still holding replies waits for a restart, or for its expiry.
    await host.store.removeInstanceQueueIfEmpty(instanceQueue).catch((error: unknown) =>
      host.logger()?.warn('Could not remove an empty instance queue', {
        queue: instanceQueue,
        error: String(error),
      }),
    );
  }
}
