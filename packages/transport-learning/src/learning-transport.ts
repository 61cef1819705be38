import { resolve } from 'node:path';
import {
  ConfigurationError,
  DestinationNotFoundError,
  type Logger,
  type Transport,
  type TransportCapabilities,
  UsageError,
} from '@tidings/core';
import {
  type EndpointTopology,
  TRANSPORT_SPI_VERSION,
  type TransportContext,
  type TransportEndpoint,
  type TransportOperation,
} from '@tidings/core/transport';
import { checkQueueFolderName, isQueueFolderName, newOwnerId } from './file-names.js';
import { FileStore, type StagedMessage } from './file-store.js';
import { type LearningTransportOptions, resolveOptions } from './options.js';
import { Receiver } from './receiver.js';

/**
 * The longest delay: 100 years. Due times are in file names as 14-digit milliseconds, which
 * sort in due order only up to the year 5138; a delay near `Number.MAX_SAFE_INTEGER` would never
 * be due at all.
 */
export const MAX_DELAY_MS = 100 * 365.25 * 24 * 60 * 60 * 1000;

/** The learning transport, plus where it keeps its files. */
export interface LearningTransport extends Transport {
  /** The absolute root directory: one folder per queue. */
  readonly rootDir: string;
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as { code?: string }).code === 'EPERM';
  }
}

/**
 * A transport on the local file system, for development and demos: one folder per queue under
 * `rootDir`, one file per message. Processes on one machine that share the folder talk to each
 * other with no broker. Not for production: see the README.
 */
export function createLearningTransport(options: LearningTransportOptions = {}): LearningTransport {
  const settings = resolveOptions(options);
  const rootDir = resolve(settings.rootDir);
  const store = new FileStore(rootDir, settings.fsync);
  const capabilities: TransportCapabilities = {
    delayedDelivery: true,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: settings.maxMessageSizeBytes,
    deliveryCount: true,
    durable: true,
    maxDelayMs: MAX_DELAY_MS,
  };
  /** Names this transport's claims and heartbeat: the process id, and which transport in it. */
  const owner = newOwnerId();
  const receivers = new Set<Receiver>();
  const instanceQueues = new Set<string>();
  const knownQueues = new Set<string>();
  let prepared: Promise<void> | undefined;
  let logger: Logger | undefined;

  const housekeeping = {
    timer: undefined as NodeJS.Timeout | undefined,
    running: undefined as Promise<void> | undefined,
    lastBeat: 0,
    lastExpiry: 0,
    reportedMissing: new Set<string>(),
  };
  /** Subscribers found without their queue, reported once each (`<type>\0<queue>`). */
  const reportedStale = new Set<string>();
  const reportStale = (messageType: string, queue: string, why: string) => {
    const key = `${messageType}\0${queue}`;
    if (reportedStale.has(key)) return;
    reportedStale.add(key);
    logger?.warn(
      `Published '${messageType}' without a copy for subscriber '${queue}': ${why}. Delete .subscriptions/…/${queue} if that endpoint is gone for good`,
      { messageType, queue },
    );
  };

  /**
   * The subscribers of a message type that can take a copy. A subscription left behind by a
   * queue whose folder was deleted is skipped and reported, not failed: failing would fail every
   * publish of the type, and each retry would send the live subscribers their copies again.
   */
  const liveSubscribers = async (messageType: string): Promise<string[]> => {
    const live: string[] = [];
    for (const queue of await store.subscribers(messageType)) {
      if (!isQueueFolderName(queue)) {
        reportStale(messageType, queue, 'not a queue name');
      } else if (knownQueues.has(queue) || (await store.queueExists(queue))) {
        knownQueues.add(queue);
        live.push(queue);
      } else {
        reportStale(messageType, queue, 'its queue folder does not exist');
      }
    }
    return live;
  };

  const isAbandoned = async (claimOwner: string, pid: number, now: number): Promise<boolean> => {
    if (pid !== process.pid && !isProcessAlive(pid)) return true;
    const last = await store.lastHeartbeat(claimOwner);
    return last === undefined || now - last > settings.leaseMs;
  };

  const housekeepOnce = async (): Promise<void> => {
    const now = Date.now();
    if (now - housekeeping.lastBeat >= settings.leaseMs / 3) {
      housekeeping.lastBeat = now;
      await store.heartbeat(owner);
      for (const queue of instanceQueues) await store.touchInstanceQueue(queue);
    }
    await store.moveDue(now, (queue, file) => {
      if (housekeeping.reportedMissing.has(file)) return;
      housekeeping.reportedMissing.add(file);
      logger?.warn(`A delayed message is due but its queue '${queue}' does not exist; it waits`, {
        file,
      });
    });
    const verdicts = new Map<string, Promise<boolean>>();
    const queues = new Set([...receivers].flatMap((receiver) => receiver.queues));
    for (const queue of queues) {
      const reclaimed = await store.reclaim(queue, owner, (claimOwner, pid) => {
        let verdict = verdicts.get(claimOwner);
        if (verdict === undefined) {
          verdict = isAbandoned(claimOwner, pid, now);
          verdicts.set(claimOwner, verdict);
        }
        return verdict;
      });
      if (reclaimed > 0) {
        logger?.warn(
          `Took back ${reclaimed} message(s) from a receiver that stopped without settling them`,
          { queue },
        );
        for (const receiver of receivers) if (receiver.queues.includes(queue)) receiver.wake(queue);
      }
    }
    const expiryEvery = Math.min(60_000, settings.instanceQueueExpiryMs / 4);
    if (now - housekeeping.lastExpiry >= expiryEvery) {
      housekeeping.lastExpiry = now;
      const deleted = await store.expire(now, settings.instanceQueueExpiryMs, instanceQueues);
      if (deleted.length > 0) logger?.info('Deleted expired instance queues', { queues: deleted });
    }
  };

  const tick = () => {
    if (housekeeping.running !== undefined) return;
    housekeeping.running = housekeepOnce()
      .catch((error: unknown) => {
        logger?.warn(`Learning transport housekeeping failed: ${(error as Error).message}`);
      })
      .finally(() => {
        housekeeping.running = undefined;
      });
  };

  const startHousekeeping = async () => {
    if (housekeeping.timer !== undefined) return;
    // The heartbeat exists before the first claim, so nobody mistakes our claims for abandoned ones.
    await store.heartbeat(owner);
    housekeeping.lastBeat = Date.now();
    housekeeping.timer = setInterval(tick, settings.housekeepingIntervalMs);
    housekeeping.timer.unref();
    tick();
  };

  const stopHousekeeping = async () => {
    clearInterval(housekeeping.timer);
    housekeeping.timer = undefined;
    await housekeeping.running;
    await store.removeOwner(owner);
  };

  /** Resolves every operation to staged files; nothing is visible until all are staged. */
  const stage = async (operations: readonly TransportOperation[]): Promise<StagedMessage[]> => {
    const planned: Array<{ operation: TransportOperation; queues: string[] }> = [];
    for (const operation of operations) {
      const destination = operation.destination;
      if (operation.delayMs !== undefined && operation.delayMs > MAX_DELAY_MS) {
        // Core refuses a longer delayMs at the call; a delayed retry's delay comes from config.
        throw new UsageError(
          `The learning transport delays at most ${MAX_DELAY_MS} ms (100 years); got ${operation.delayMs}.`,
        );
      }
      if (destination.kind === 'queue') {
        checkQueueFolderName(destination.queue);
        // Check every destination first, so a batch with one bad destination sends nothing.
        // Queues seen once are remembered: one deleted since still fails at the rename.
        if (!knownQueues.has(destination.queue)) {
          if (!(await store.queueExists(destination.queue))) {
            throw new DestinationNotFoundError(destination.queue);
          }
          knownQueues.add(destination.queue);
        }
        planned.push({ operation, queues: [destination.queue] });
      } else {
        planned.push({ operation, queues: await liveSubscribers(destination.messageType) });
      }
    }
    const staged: StagedMessage[] = [];
    try {
      for (const { operation, queues } of planned) {
        const dueAt =
          operation.delayMs !== undefined && operation.delayMs > 0
            ? Date.now() + operation.delayMs
            : undefined;
        const messageType =
          operation.destination.kind === 'publish' ? operation.destination.messageType : undefined;
        for (const queue of queues) {
          staged.push(await store.stage(operation.message, queue, dueAt, messageType));
        }
      }
    } catch (error) {
      await Promise.all(staged.map((file) => store.discard(file)));
      throw error;
    }
    return staged;
  };

  return {
    spiVersion: TRANSPORT_SPI_VERSION,
    name: 'learning',
    capabilities,
    rootDir,

    async openEndpoint(
      topology: EndpointTopology,
      context: TransportContext,
    ): Promise<TransportEndpoint> {
      logger ??= context.logger;
      prepared ??= store.prepare();
      try {
        await prepared;
      } catch (error) {
        prepared = undefined;
        throw error;
      }
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
      const ownQueues = [topology.instanceQueue, topology.inputQueue].filter(
        (queue): queue is string => queue !== undefined,
      );
      /** One per queue: the input and instance queues each get the full concurrency. */
      let current: Receiver[] = [];
      const retired: Receiver[] = [];
      /** From `startReceiving` to `close`, which then stops what it started (housekeeping too). */
      let started = false;
      /** Dispatches under way: close waits for them, so none is cut off halfway. */
      const inFlightDispatches = new Set<Promise<void>>();

      return {
        dispatch(operations) {
          const dispatching = (async () => {
            const staged = await stage(operations);
            for (const [index, file] of staged.entries()) {
              try {
                await store.commit(file);
              } catch (error) {
                if (error instanceof DestinationNotFoundError) {
                  knownQueues.delete(file.queue);
                  // A subscriber's queue deleted since it was looked up: skipped, as above.
                  if (file.messageType !== undefined) {
                    reportStale(file.messageType, file.queue, 'its queue folder does not exist');
                    continue;
                  }
                }
                await Promise.all(staged.slice(index + 1).map((rest) => store.discard(rest)));
                throw error;
              }
            }
          })();
          const tracked = dispatching.then(
            () => {},
            () => {},
          );
          inFlightDispatches.add(tracked);
          void tracked.then(() => inFlightDispatches.delete(tracked));
          return dispatching;
        },

        async startReceiving(receiveSettings) {
          if (current.some((receiver) => receiver.isActive)) return;
          // A stopped receiver may still be settling messages: keep it until close.
          retired.push(...current);
          await startHousekeeping();
          const instanceQueue = topology.instanceQueue;
          if (instanceQueue !== undefined) {
            // Two live processes on one instance id would take each other's replies.
            const holder = await store.holdInstanceQueue(instanceQueue, owner, (other) =>
              isAbandoned(other, Number(other.split('-')[0]), Date.now()),
            );
            if (holder !== undefined) {
              if (receivers.size === 0) await stopHousekeeping();
              throw new ConfigurationError(
                `Learning transport: another live process (${holder}) receives from '${instanceQueue}': two instances of endpoint '${topology.endpointName}' share an instance id, and would take each other's replies. Give each process an instanceId of its own, or leave it out for a generated one.`,
              );
            }
            instanceQueues.add(instanceQueue);
          }
          started = true;
          const host = {
            store,
            owner,
            logger: context.logger,
            pollIntervalMs: settings.pollIntervalMs,
          };
          current = ownQueues.map((queue) => new Receiver(host, [queue], receiveSettings));
          for (const receiver of current) {
            receivers.add(receiver);
            receiver.start();
          }
        },

        async stopReceiving() {
          for (const receiver of current) receiver.stop();
        },

        async subscribe(messageType) {
          if (inputQueue !== undefined) await store.subscribe(messageType, inputQueue);
        },

        async unsubscribe(messageType) {
          if (inputQueue !== undefined) await store.unsubscribe(messageType, inputQueue);
        },

        async close() {
          await Promise.all(inFlightDispatches);
          if (started) {
            started = false;
            const closing = [...retired.splice(0), ...current];
            current = [];
            await Promise.all(closing.map((r) => r.close()));
            for (const closed of closing) receivers.delete(closed);
            if (receivers.size === 0) await stopHousekeeping();
          }
          const instanceQueue = topology.instanceQueue;
          if (instanceQueue === undefined) return;
          instanceQueues.delete(instanceQueue);
          await store.releaseInstanceQueue(instanceQueue, owner);
          // A clean stop leaves no empty folder behind (a generated instance id is never used
          // again); a queue still holding replies waits for a restart, or for its expiry.
          await store.removeInstanceQueueIfEmpty(instanceQueue).catch((error: unknown) =>
            logger?.warn('Could not remove an empty instance queue', {
              queue: instanceQueue,
              error: String(error),
            }),
          );
        },
      };
    },
  };
}
