import {
  isServiceBusError,
  RetryMode,
  ServiceBusClient,
  type ServiceBusClientOptions,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
  type ServiceBusSender,
} from '@azure/service-bus';
import {
  ConfigurationError,
  checkWholeNumber,
  Headers,
  type Logger,
  MessageTooLargeError,
  type Transport,
  type TransportCapabilities,
} from '@tidings/core';
import {
  checkTimerMs,
  type EndpointTopology,
  type IncomingTransportMessage,
  type MessageOutcome,
  QueueSlots,
  type ReceiveSettings,
  redactSecrets,
  TRANSPORT_SPI_VERSION,
  type TransportContext,
  type TransportEndpoint,
  type TransportOperation,
} from '@tidings/core/transport';
import { mapServiceBusError } from './errors.js';
import { createAdministrationInstaller, type TopologyInstaller } from './installer.js';
import { checkServiceRange, serviceBusLimits } from './limits.js';
import { createLockKeeper, type LockKeeper } from './lock-keeper.js';
import { toIncomingMessage } from './message-mapping.js';
import { checkDistinctTopics, subscriptionName, topicName } from './naming.js';
import { enableTcpNoDelay } from './no-delay.js';
import {
  type AzureServiceBusTransportOptions,
  azureServiceBusTransportDefaults,
} from './options.js';
import { toCheckedServiceBusMessage } from './property-limits.js';

const TRANSPORT_NAME = 'azure-service-bus';

/** A message that fits in no batch of `limit` bytes. */
const tooLarge = (operation: TransportOperation, limit: number) =>
  new MessageTooLargeError(
    operation.message.headers[Headers.MessageType] ?? operation.message.messageId,
    operation.message.body.byteLength,
    limit,
    TRANSPORT_NAME,
  );

/** Generous bound on what AMQP encoding adds to body plus headers (sections, descriptors, ids). */
const ENCODING_HEADROOM_BYTES = 16 * 1024;
/** How long a receiver may stay silent after a receive error before it is replaced. */
const RECEIVE_STALL_MS = 10_000;
/** A receiver whose link is down right after an error is looked at again this much later. */
const RECHECK_MS = 2_000;

/** What the parts of the SDK's receiver read here look like (7.9, receivers/receiver.ts). */
interface StreamingReceiverInternals {
  _streamingReceiver?: { isOpen?: () => boolean; link?: { credit?: number } };
}

/**
 * Whether the SDK's streaming receiver has its link attached with credit (`ready`: messages
 * would flow), or not (`down`). `unknown` if an SDK update moved these internals; the watchdog
 * then treats silence after an error as a stall, as it did before it could tell.
 */
function linkState(receiver: ServiceBusReceiver): 'ready' | 'down' | 'unknown' {
  const streaming = (receiver as unknown as StreamingReceiverInternals)._streamingReceiver;
  if (typeof streaming?.isOpen !== 'function') return 'unknown';
  return streaming.isOpen() && (streaming.link?.credit ?? 0) > 0 ? 'ready' : 'down';
}

/**
 * The most bytes body, id and headers can take: characters are counted at six bytes each, what a
 * control character or a lone surrogate takes in the packed bus headers' JSON (`\uXXXX`; UTF-8
 * alone takes at most three), as counting bytes costs more and only matters near the limit.
 */
function sizeAtMost(operation: TransportOperation): number {
  let units = operation.message.messageId.length;
  for (const name in operation.message.headers) {
    units += name.length + (operation.message.headers[name] as string).length;
  }
  return operation.message.body.byteLength + 6 * units;
}

/** Counts of what happened on the wire, for tests and monitoring. */
export interface AzureServiceBusTransportStats {
  /** Settlements that failed (lock lost, link gone): the message is delivered again. */
  readonly settlementFailures: number;
  /** Errors the SDK reported while receiving (it reconnects by itself). */
  readonly receiveErrors: number;
  /** Receivers replaced because nothing arrived for a while after a receive error. */
  readonly receiverRestarts: number;
  /** Queues created again after they were deleted under a running receiver (auto-delete on idle). */
  readonly queuesRecreated: number;
}

export interface AzureServiceBusTransport extends Transport {
  readonly stats: AzureServiceBusTransportStats;
}

function secretsOf(options: AzureServiceBusTransportOptions): string[] {
  if (!('connectionString' in options)) return [];
  const key = /SharedAccessKey=([^;]+)/i.exec(options.connectionString)?.[1];
  const signature = /SharedAccessSignature=([^;]+)/i.exec(options.connectionString)?.[1];
  return [options.connectionString, key, signature].filter((s): s is string => Boolean(s));
}

const settlementGates = new WeakMap<object, Promise<void>>();
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * rhea (under the SDK) sends the dispositions queued in one tick as ranges, and merges a delivery
 * into a one-delivery range without comparing outcomes (lib/session.js, write_dispositions): an
 * abandon or dead-letter settled in the same tick right after a complete would be sent as a
 * complete, and the message lost. So a settlement other than complete goes out alone: after the
 * dispositions already queued are flushed, with completes held back until it is flushed too.
 */
async function settleIsolated(
  receiver: object,
  outcome: MessageOutcome,
  settleNow: () => Promise<void>,
): Promise<void> {
  if (outcome === 'complete') {
    const gate = settlementGates.get(receiver);
    if (gate !== undefined) await gate;
    return settleNow();
  }
  const previous = settlementGates.get(receiver);
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  settlementGates.set(receiver, gate);
  try {
    if (previous !== undefined) await previous;
    await nextTurn();
    const settled = settleNow();
    // Observed now, awaited below: a failure while waiting for the flush is not unhandled.
    settled.catch(() => {});
    await nextTurn();
    await settled;
  } finally {
    if (settlementGates.get(receiver) === gate) settlementGates.delete(receiver);
    open();
  }
}

/**
 * Azure Service Bus through @azure/service-bus: a queue per endpoint, an instance queue that
 * deletes itself when idle, a topic per event type with a forwarding subscription per
 * subscribing endpoint, peek-lock receiving with explicit settlement, scheduled messages for
 * delays.
 */
export function createAzureServiceBusTransport(
  options: AzureServiceBusTransportOptions,
): AzureServiceBusTransport {
  const hasConnectionString =
    'connectionString' in options && typeof options.connectionString === 'string';
  const hasCredential =
    'fullyQualifiedNamespace' in options &&
    typeof options.fullyQualifiedNamespace === 'string' &&
    'credential' in options &&
    typeof options.credential?.getToken === 'function';
  if (!hasConnectionString && !hasCredential) {
    throw new ConfigurationError(
      'createAzureServiceBusTransport needs { connectionString } or { fullyQualifiedNamespace, credential }.',
    );
  }
  const secrets = secretsOf(options);
  const settings = {
    // Premium's limit: a larger value would pass here and be refused by every namespace.
    maxMessageSizeBytes: checkServiceRange(
      'maxMessageSizeBytes',
      options.maxMessageSizeBytes ?? azureServiceBusTransportDefaults.maxMessageSizeBytes,
      1,
      serviceBusLimits.maxMessageSizeBytes,
    ),
    instanceQueueAutoDeleteOnIdleMs: checkServiceRange(
      'instanceQueueAutoDeleteOnIdleMs',
      options.instanceQueueAutoDeleteOnIdleMs ??
        azureServiceBusTransportDefaults.instanceQueueAutoDeleteOnIdleMs,
      serviceBusLimits.minAutoDeleteOnIdleMs,
    ),
    maxDeliveryCount: checkWholeNumber(
      'maxDeliveryCount',
      options.maxDeliveryCount ?? azureServiceBusTransportDefaults.maxDeliveryCount,
    ),
    // 0 turns the SDK's lock renewal off.
    maxAutoLockRenewalDurationMs: checkWholeNumber(
      'maxAutoLockRenewalDurationMs',
      options.maxAutoLockRenewalDurationMs ??
        azureServiceBusTransportDefaults.maxAutoLockRenewalDurationMs,
      0,
    ),
    // Also one timer per settlement: Node.js fires one of 2^31 ms or more at once.
    operationTimeoutMs: checkTimerMs(
      'operationTimeoutMs',
      options.operationTimeoutMs ?? azureServiceBusTransportDefaults.operationTimeoutMs,
    ),
    maxRetries: checkWholeNumber(
      'maxRetries',
      options.maxRetries ?? azureServiceBusTransportDefaults.maxRetries,
      0,
    ),
    tcpNoDelay: options.tcpNoDelay ?? azureServiceBusTransportDefaults.tcpNoDelay,
    retryDelayMs: checkWholeNumber(
      'retryDelayMs',
      options.retryDelayMs ?? azureServiceBusTransportDefaults.retryDelayMs,
    ),
    maxCachedSenders: checkWholeNumber(
      'maxCachedSenders',
      options.maxCachedSenders ?? azureServiceBusTransportDefaults.maxCachedSenders,
    ),
  };
  const duplicateDetection =
    options.duplicateDetectionWindowMs === undefined
      ? {}
      : {
          duplicateDetectionWindowMs: checkServiceRange(
            'duplicateDetectionWindowMs',
            options.duplicateDetectionWindowMs,
            serviceBusLimits.minDuplicateDetectionWindowMs,
            serviceBusLimits.maxDuplicateDetectionWindowMs,
          ),
        };
  const lockDuration =
    options.lockDurationMs === undefined
      ? {}
      : {
          lockDurationMs: checkServiceRange(
            'lockDurationMs',
            options.lockDurationMs,
            serviceBusLimits.minLockDurationMs,
            serviceBusLimits.maxLockDurationMs,
          ),
        };
  if (options.installer !== undefined && options.administration !== undefined) {
    throw new ConfigurationError(
      '`administration` configures the default installer; with your own `installer`, pass them to createAdministrationInstaller(connection, administration) instead.',
    );
  }
  const installer: TopologyInstaller =
    options.installer ??
    createAdministrationInstaller(
      hasConnectionString
        ? { connectionString: (options as { connectionString: string }).connectionString }
        : (options as { fullyQualifiedNamespace: string; credential: never }),
      options.administration,
    );
  const capabilities: TransportCapabilities = {
    delayedDelivery: true,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: settings.maxMessageSizeBytes,
    deliveryCount: true,
    durable: true,
    nativeDeadLetter: true,
  };
  const counters = {
    settlementFailures: 0,
    receiveErrors: 0,
    receiverRestarts: 0,
    queuesRecreated: 0,
  };
  // Below this, AMQP framing cannot push a message over the limit; above it, a batch measures it.
  const directSendLimit = settings.maxMessageSizeBytes - ENCODING_HEADROOM_BYTES;
  const clientOptions: ServiceBusClientOptions = {
    retryOptions: {
      maxRetries: settings.maxRetries,
      timeoutInMs: settings.operationTimeoutMs,
      mode: RetryMode.Exponential,
      retryDelayInMs: settings.retryDelayMs,
      maxRetryDelayInMs: 30_000,
    },
  };
  const newClient = (): ServiceBusClient => {
    const client =
      'connectionString' in options
        ? new ServiceBusClient(options.connectionString, clientOptions)
        : new ServiceBusClient(
            options.fullyQualifiedNamespace,
            options.credential as never,
            clientOptions,
          );
    if (settings.tcpNoDelay) enableTcpNoDelay(client);
    return client;
  };
  const fail = (error: unknown, operation: string, destination?: string) =>
    mapServiceBusError(error, {
      operation,
      ...(destination !== undefined ? { destination } : {}),
      secrets,
    });

  return {
    spiVersion: TRANSPORT_SPI_VERSION,
    name: TRANSPORT_NAME,
    capabilities,
    get stats() {
      return { ...counters };
    },

    async openEndpoint(
      topology: EndpointTopology,
      context: TransportContext,
    ): Promise<TransportEndpoint> {
      const logger: Logger = context.logger;
      checkDistinctTopics(topology.endpointName, topology.subscriptions);
      /**
       * Creates one of the queues this endpoint reads, with its settings. Async, so a custom
       * installer that throws at the call rejects instead: an attempt to create a queue again
       * then ends, and the next one can start.
       */
      const ensureOwnQueue = async (queue: string) =>
        installer.ensureQueue(
          queue,
          queue === topology.instanceQueue
            ? {
                maxDeliveryCount: settings.maxDeliveryCount,
                autoDeleteOnIdleMs: settings.instanceQueueAutoDeleteOnIdleMs,
                ...lockDuration,
              }
            : {
                maxDeliveryCount: settings.maxDeliveryCount,
                ...duplicateDetection,
                ...lockDuration,
              },
        );
      try {
        await installer.ensureQueue(topology.errorQueue, {});
        if (topology.inputQueue !== undefined) await ensureOwnQueue(topology.inputQueue);
        if (topology.instanceQueue !== undefined) await ensureOwnQueue(topology.instanceQueue);
      } catch (error) {
        throw fail(error, 'creating queues');
      }
      // One client (one AMQP connection) per endpoint; senders cached per destination, the most
      // recently used last, each with the sends using it now.
      const client = newClient();
      interface CachedSender {
        sender: ServiceBusSender;
        inUse: number;
        /** Out of the cache (its destination was not found): closed once no send uses it. */
        dropped: boolean;
        /** Below this a single message is sent without a batch; set on the first send. */
        directLimit: number | undefined;
      }
      const senders = new Map<string, CachedSender>();
      /** The destination's sender, marked in use until `release`. */
      const takeSender = (entity: string) => {
        let cached = senders.get(entity);
        if (cached === undefined) {
          if (senders.size >= settings.maxCachedSenders) closeIdleSenders();
          cached = {
            sender: client.createSender(entity),
            inUse: 0,
            dropped: false,
            directLimit: undefined,
          };
        } else {
          senders.delete(entity);
        }
        senders.set(entity, cached);
        cached.inUse++;
        return cached;
      };
      const release = (cached: CachedSender) => {
        cached.inUse--;
        if (cached.dropped && cached.inUse === 0) cached.sender.close().catch(() => {});
      };
      /** Closes the least recently used senders no send is using, down to below the limit. */
      const closeIdleSenders = () => {
        for (const [entity, cached] of senders) {
          if (senders.size < settings.maxCachedSenders) return;
          if (cached.inUse > 0) continue;
          senders.delete(entity);
          cached.sender.close().catch(() => {});
        }
      };
      /**
       * Takes a sender whose destination was not found out of the cache, so the next send attaches
       * anew; closing it waits for the sends that took it too, which a closed sender would fail
       * with an error of its own instead of their not-found.
       */
      const dropSender = (entity: string, cached: CachedSender) => {
        if (senders.get(entity) === cached) senders.delete(entity);
        cached.dropped = true;
      };

      const subscribe = async (messageType: string) => {
        if (topology.inputQueue === undefined) return;
        const topic = topicName(messageType);
        try {
          await installer.ensureTopic(topic);
          // The subscription forwards into the endpoint's queue: one receiver per endpoint,
          // and the queue's concurrency, settlement and dead-lettering cover events too.
          await installer.ensureSubscription(topic, subscriptionName(topology.inputQueue), {
            forwardTo: topology.inputQueue,
            maxDeliveryCount: settings.maxDeliveryCount,
          });
        } catch (error) {
          throw fail(error, `subscribing to '${messageType}'`, topic);
        }
      };
      try {
        for (const messageType of topology.subscriptions) await subscribe(messageType);
      } catch (error) {
        await client.close().catch(() => {});
        throw error;
      }

      /** Sends one destination's messages in as few batches as fit; a message that fits in none is refused. */
      const sendTo = async (cached: CachedSender, operations: readonly TransportOperation[]) => {
        const sender = cached.sender;
        if (cached.directLimit === undefined) {
          // The entity's own limit, advertised on the link (256 KiB on Standard whatever
          // maxMessageSizeBytes says): the SDK does not check a single send against it, so the
          // direct path stays below it too, and a larger message is measured by a batch and
          // refused with MessageTooLargeError instead of failing at the service.
          const probe = await sender.createMessageBatch();
          cached.directLimit = Math.min(
            directSendLimit,
            probe.maxSizeInBytes - ENCODING_HEADROOM_BYTES,
          );
        }
        const [only] = operations;
        if (
          operations.length === 1 &&
          only !== undefined &&
          sizeAtMost(only) < cached.directLimit
        ) {
          // Well under the limit (core checked body plus headers): skip the batch envelope.
          await sender.sendMessages(
            toCheckedServiceBusMessage(only.message, only.delayMs, only.copyOf),
          );
          return;
        }
        let batch = await sender.createMessageBatch();
        for (const operation of operations) {
          const message = toCheckedServiceBusMessage(
            operation.message,
            operation.delayMs,
            operation.copyOf,
          );
          if (batch.tryAddMessage(message)) continue;
          if (batch.count === 0) throw tooLarge(operation, batch.maxSizeInBytes);
          await sender.sendMessages(batch);
          batch = await sender.createMessageBatch();
          if (!batch.tryAddMessage(message)) throw tooLarge(operation, batch.maxSizeInBytes);
        }
        if (batch.count > 0) await sender.sendMessages(batch);
      };

      /** Sends one destination's operations; errors mapped, a publish with no topic dropped. */
      const sendGroup = async (
        entity: string,
        publish: boolean,
        operations: readonly TransportOperation[],
      ) => {
        const cached = takeSender(entity);
        try {
          await sendTo(cached, operations);
        } catch (error) {
          const mapped = fail(error, `send to '${entity}'`, entity);
          if (mapped.code === 'TIDINGS_DESTINATION_NOT_FOUND') {
            dropSender(entity, cached);
            // No topic means no subscriber has ever subscribed: nobody to deliver to.
            if (publish) {
              logger.debug(`No subscribers for '${entity}' (topic does not exist)`);
              return;
            }
          }
          throw mapped;
        } finally {
          release(cached);
        }
      };

      const entityOf = (destination: TransportOperation['destination']) =>
        destination.kind === 'queue' ? destination.queue : topicName(destination.messageType);

      const dispatch = async (operations: readonly TransportOperation[]): Promise<void> => {
        // One message (every send, reply and publish outside a handler): no grouping.
        if (operations.length === 1) {
          const { destination } = operations[0] as TransportOperation;
          return sendGroup(entityOf(destination), destination.kind === 'publish', operations);
        }
        const byEntity = new Map<string, { publish: boolean; operations: TransportOperation[] }>();
        for (const operation of operations) {
          const entity = entityOf(operation.destination);
          let group = byEntity.get(entity);
          if (group === undefined) {
            group = { publish: operation.destination.kind === 'publish', operations: [] };
            byEntity.set(entity, group);
          }
          group.operations.push(operation);
        }
        await Promise.all(
          [...byEntity].map(([entity, group]) =>
            sendGroup(entity, group.publish, group.operations),
          ),
        );
      };

      // Receiving.
      interface ReceiverEntry {
        receiver: ServiceBusReceiver;
        close(): Promise<void>;
        /** When the last message arrived, and when the SDK last reported a receive error. */
        lastMessageAt: number;
        lastErrorAt: number;
        /** Messages from this receiver not settled yet. */
        inFlight: number;
        watchdog: NodeJS.Timeout | undefined;
        /** Replaced by the watchdog: closed once its messages are settled. */
        retired: boolean;
        /** Renews in-flight messages' locks once their link is detached (the SDK stops). */
        locks: LockKeeper;
      }
      let receivers: ReceiverEntry[] = [];
      /** Receivers the watchdog replaced that still hold messages. */
      const retiring = new Set<ReceiverEntry>();
      const closeRetired = (entry: ReceiverEntry) => {
        retiring.delete(entry);
        entry.locks.stop();
        void entry.receiver.close().catch(() => {});
      };
      let accepting = false;
      /**
       * Messages waiting for a slot, each with what abandons it. Stopping hands them back at once,
       * while the links that can settle them are open; waiting for the handlers ahead of them would
       * leave them locked until their locks expire.
       */
      const waiting = new Set<() => Promise<void>>();
      // Settlements under way; close waits for them (not for handlers, which may never return).
      const settling = new Set<Promise<void>>();

      const settle = async (
        receiver: ServiceBusReceiver,
        message: ServiceBusReceivedMessage,
        outcome: MessageOutcome,
        queue: string,
      ) => {
        // After a reconnect the SDK may settle a message from the old link on a delivery that
        // can no longer reach the broker and wait 60 s for an answer; bound the wait so a slot is
        // not held for it. The broker redelivers the message once its lock is gone.
        const work = new Promise<void>((resolve, reject) => {
          // No Promise.race: one promise and one timer per settlement, which runs for every message.
          const timer = setTimeout(() => {
            settling.delete(work);
            reject(new Error(`no answer within ${settings.operationTimeoutMs} ms`));
          }, settings.operationTimeoutMs);
          settleIsolated(receiver, outcome, () =>
            outcome === 'complete'
              ? receiver.completeMessage(message)
              : outcome === 'abandon'
                ? receiver.abandonMessage(message)
                : // Unreadable: Service Bus's own dead-letter queue keeps it, with the reason.
                  receiver.deadLetterMessage(message, {
                    deadLetterReason: outcome.reason,
                    deadLetterErrorDescription: outcome.description,
                  }),
          ).then(
            () => {
              clearTimeout(timer);
              settling.delete(work);
              resolve();
            },
            (error: unknown) => {
              clearTimeout(timer);
              settling.delete(work);
              reject(error);
            },
          );
        });
        settling.add(work);
        try {
          await work;
        } catch (error) {
          // Lock lost or link gone: Service Bus delivers the message again (at least once).
          counters.settlementFailures++;
          const what = typeof outcome === 'string' ? outcome : 'dead-letter';
          logger.warn(`Could not ${what} a message on '${queue}'; it will be delivered again`, {
            messageId: String(message.messageId ?? ''),
            error: redactSecrets(String((error as Error)?.message ?? error), secrets),
          });
        }
      };

      const startReceiving = async (receive: ReceiveSettings) => {
        if (accepting) return;
        accepting = true;
        const queues = [topology.inputQueue, topology.instanceQueue].filter(
          (queue): queue is string => queue !== undefined,
        );
        // Slots per queue: the input queue (events are forwarded into it) has its own, and so does
        // the instance queue, so handlers awaiting requests cannot hold the slots their replies need.
        // A replacement receiver (watchdog) shares its queue's slots with the one it replaces.
        const slotsByQueue = new Map(
          queues.map((queue) => [queue, new QueueSlots(receive.concurrency)]),
        );
        /**
         * After a receive error the SDK re-attaches its link by itself, but after a forced detach
         * it sometimes never does (seen with 7.9 against the peer). If nothing has arrived
         * `RECEIVE_STALL_MS` after an error and the link is not attached with credit again, the
         * receiver is replaced, even while handlers still hold its messages: one hung handler
         * must not keep the queue deaf. A link that is attached with credit is merely quiet:
         * Service Bus detaches idle links every 10 minutes, and on a quiet queue nothing arrives
         * after the SDK attaches again; replacing that receiver would only churn links. The
         * old receiver only stops taking messages; it is closed once the messages it holds are
         * settled. Their settlements need it open: the SDK refuses to settle through a closed
         * receiver, and through an open one settles on the link that received the message or,
         * with that link gone, by lock token over the management link
         * (receivers/receiverCommon.ts, settleMessageOperation).
         */
        const watch = (entry: ReceiverEntry, queue: string) => {
          entry.lastErrorAt = Date.now();
          if (entry.watchdog !== undefined) return;
          let rechecks = 0;
          entry.watchdog = setTimeout(function check() {
            entry.watchdog = undefined;
            const index = receivers.indexOf(entry);
            if (!accepting || index < 0 || entry.lastMessageAt > entry.lastErrorAt) return;
            const link = linkState(entry.receiver);
            const quiet = Date.now() - entry.lastErrorAt >= RECHECK_MS;
            // Attached with credit, and no error for a while: a quiet queue, not a stall.
            if (link === 'ready' && quiet) return;
            // An error just now: the SDK may be attaching again; look once more shortly. Errors
            // that keep coming for as long again (an attach refused each time) are a stall.
            if (link !== 'unknown' && !quiet && rechecks < RECEIVE_STALL_MS / RECHECK_MS) {
              rechecks++;
              entry.watchdog = setTimeout(check, RECHECK_MS);
              entry.watchdog.unref();
              return;
            }
            logger.info(`Receiving from '${queue}' restarts: nothing arrived after a link error`);
            counters.receiverRestarts++;
            receivers[index] = open(queue);
            entry.retired = true;
            void entry.close().catch(() => {});
            if (entry.inFlight === 0) closeRetired(entry);
            else retiring.add(entry);
          }, RECEIVE_STALL_MS);
          entry.watchdog.unref();
        };
        /**
         * A queue this endpoint reads was deleted under it: an instance queue whose
         * `autoDeleteOnIdle` ran out during a long outage, say. The SDK keeps retrying the attach,
         * so creating the queue again is enough; one attempt at a time per queue.
         */
        const recreating = new Set<string>();
        const recreate = (queue: string) => {
          if (recreating.has(queue) || !accepting) return;
          recreating.add(queue);
          ensureOwnQueue(queue)
            .then(
              () => {
                counters.queuesRecreated++;
                logger.warn(`Queue '${queue}' was gone; it has been created again`);
              },
              (error: unknown) =>
                logger.warn(`Queue '${queue}' is gone and could not be created again`, {
                  error: redactSecrets(String((error as Error)?.message ?? error), secrets),
                }),
            )
            .finally(() => recreating.delete(queue));
        };
        /**
         * Waits for one of `slots`; false if receiving stopped first, once the message is handed
         * back (the slot, when it comes, is given up). The SDK renews the message's lock meanwhile:
         * its StreamingReceiver starts the lock renewer on arrival, before `processMessage`.
         */
        const slotOrHandedBack = (
          slots: QueueSlots,
          receiver: ServiceBusReceiver,
          message: ServiceBusReceivedMessage,
          queue: string,
        ) =>
          new Promise<boolean>((resolve) => {
            const handBack = () => {
              const abandoned = settle(receiver, message, 'abandon', queue);
              void abandoned.then(() => resolve(false));
              return abandoned;
            };
            waiting.add(handBack);
            void slots.acquire().then(() => {
              if (waiting.delete(handBack)) resolve(true);
              else slots.release();
            });
          });
        const open = (queue: string): ReceiverEntry => {
          const slots = slotsByQueue.get(queue) as QueueSlots;
          const receiver = client.createReceiver(queue, {
            receiveMode: 'peekLock',
            maxAutoLockRenewalDurationInMs: settings.maxAutoLockRenewalDurationMs,
            skipParsingBodyAsJson: true,
            // Otherwise the SDK copies the application properties and annotations twice each per
            // message, to turn dates into numbers; a date property becomes ISO 8601 text instead.
            skipConvertingDate: true,
          });
          const handle = async (message: ServiceBusReceivedMessage) => {
            entry.lastMessageAt = Date.now();
            entry.inFlight++;
            entry.locks.arrived(message);
            try {
              if (!accepting) {
                // Stopping: hand it back at once for another instance.
                await settle(receiver, message, 'abandon', queue);
                return;
              }
              if (
                !slots.tryAcquire() &&
                !(await slotOrHandedBack(slots, receiver, message, queue))
              ) {
                return;
              }
              try {
                if (!accepting) {
                  await settle(receiver, message, 'abandon', queue);
                  return;
                }
                let incoming: IncomingTransportMessage;
                let outcome: MessageOutcome;
                try {
                  incoming = toIncomingMessage(message, queue);
                  outcome = await receive.onMessage(incoming);
                } catch {
                  outcome = 'abandon';
                }
                await settle(receiver, message, outcome, queue);
              } finally {
                slots.release();
              }
            } finally {
              entry.locks.done(message);
              entry.inFlight--;
              if (entry.retired && entry.inFlight === 0) closeRetired(entry);
            }
          };
          const subscription = receiver.subscribe(
            {
              processMessage: handle,
              processError: async (args) => {
                counters.receiveErrors++;
                // Only a failing link can stall receiving; a failed lock renewal does not.
                if (args.errorSource === 'receive') {
                  // The link is gone or going: the SDK stopped renewing its messages' locks.
                  entry.locks.linkLost();
                  watch(entry, queue);
                }
                if (
                  isServiceBusError(args.error) &&
                  args.error.code === 'MessagingEntityNotFound'
                ) {
                  recreate(queue);
                }
                logger.warn(`Receiving from '${queue}' failed; the SDK retries`, {
                  error: redactSecrets(String(args.error?.message ?? args.error), secrets),
                });
              },
            },
            { autoCompleteMessages: false, maxConcurrentCalls: receive.concurrency },
          );
          const entry: ReceiverEntry = {
            receiver,
            locks: createLockKeeper(
              receiver,
              settings.maxAutoLockRenewalDurationMs,
              (error, message) =>
                logger.warn(`Could not renew the lock of a message on '${queue}'`, {
                  messageId: String(message.messageId ?? ''),
                  error: redactSecrets(String((error as Error)?.message ?? error), secrets),
                }),
            ),
            close: () => subscription.close(),
            lastMessageAt: 0,
            inFlight: 0,
            lastErrorAt: 0,
            watchdog: undefined,
            retired: false,
          };
          return entry;
        };
        receivers = queues.map(open);
      };

      const stopReceiving = async () => {
        if (!accepting) return;
        accepting = false;
        for (const r of receivers) clearTimeout(r.watchdog);
        const handedBack = [...waiting].map((handBack) => handBack());
        waiting.clear();
        // Stops new deliveries; links stay open so in-flight messages can still be settled.
        await Promise.allSettled([...handedBack, ...receivers.map((r) => r.close())]);
      };

      return {
        dispatch,
        startReceiving,
        stopReceiving,
        subscribe,
        async unsubscribe(messageType) {
          if (topology.inputQueue === undefined) return;
          try {
            await installer.deleteSubscription(
              topicName(messageType),
              subscriptionName(topology.inputQueue),
            );
          } catch (error) {
            throw fail(error, `unsubscribing from '${messageType}'`);
          }
        },
        async close() {
          await stopReceiving();
          await Promise.allSettled([...settling]);
          for (const r of [...receivers, ...retiring]) r.locks.stop();
          await Promise.allSettled([...receivers, ...retiring].map((r) => r.receiver.close()));
          receivers = [];
          retiring.clear();
          await Promise.allSettled([...senders.values()].map((s) => s.sender.close()));
          senders.clear();
          await client.close().catch(() => {});
        },
      };
    },
  };
}
