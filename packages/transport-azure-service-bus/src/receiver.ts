import {
  isServiceBusError,
  type ServiceBusClient,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
} from '@azure/service-bus';
import type { Logger } from '@tidings/core';
import {
  type IncomingTransportMessage,
  type MessageOutcome,
  QueueSlots,
  type ReceiveSettings,
  redactSecrets,
} from '@tidings/core/transport';
import { toIncomingMessage } from './azure-service-bus-headers.js';
import { createLockKeeper, type LockKeeper } from './lock-keeper.js';
import type { ResolvedAzureServiceBusOptions } from './options.js';

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

/** Counts of what happened while receiving, kept by the transport for its `stats`. */
export interface ReceiveCounters {
  settlementFailures: number;
  receiveErrors: number;
  receiverRestarts: number;
  queuesRecreated: number;
}

/** What a receiver needs from its endpoint. */
export interface ReceiverHost {
  readonly client: ServiceBusClient;
  readonly options: ResolvedAzureServiceBusOptions;
  readonly logger: Logger;
  readonly counters: ReceiveCounters;
  /** Creates one of the endpoint's own queues again (it was deleted under a running receiver). */
  readonly ensureOwnQueue: (queue: string) => Promise<void>;
}

/** One SDK receiver (one AMQP link) on one queue, and what is known of it. */
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

/**
 * Consumes an endpoint's queues in peek-lock mode: one SDK receiver per queue, one `QueueSlots`
 * per queue, `onMessage` guarded (what it throws abandons the message, never reaching the SDK),
 * each outcome settled on the message's receiver. A watchdog replaces a receiver whose link
 * stalled after an error; a queue deleted under it is created again.
 */
export class Receiver {
  private receivers: ReceiverEntry[] = [];
  /** Receivers the watchdog replaced that still hold messages. */
  private readonly retiring = new Set<ReceiverEntry>();
  private accepting = false;
  /**
   * Messages waiting for a slot, each with what abandons it. Stopping hands them back at once,
   * while the links that can settle them are open; waiting for the handlers ahead of them would
   * leave them locked until their locks expire.
   */
  private readonly waiting = new Set<() => Promise<void>>();
  /** Settlements under way; close waits for them (not for handlers, which may never return). */
  private readonly settling = new Set<Promise<void>>();
  /** Queues being created again, one attempt at a time per queue. */
  private recreating = new Set<string>();
  private readonly secrets: readonly string[];
  private receive: ReceiveSettings | undefined;
  private slotsByQueue = new Map<string, QueueSlots>();

  constructor(
    private readonly host: ReceiverHost,
    private readonly queues: readonly string[],
  ) {
    this.secrets = host.options.secrets;
  }

  start(receive: ReceiveSettings): void {
    if (this.accepting) return;
    this.accepting = true;
    this.receive = receive;
    this.recreating = new Set();
    // Slots per queue: the input queue (events are forwarded into it) has its own, and so does
    // the instance queue, so handlers awaiting requests cannot hold the slots their replies need.
    // A replacement receiver (watchdog) shares its queue's slots with the one it replaces.
    this.slotsByQueue = new Map(
      this.queues.map((queue) => [queue, new QueueSlots(receive.concurrency)]),
    );
    // Those of an earlier start, stopped: closed once the messages they hold are settled, as the
    // watchdog's, or their links would stay open for the life of the connection.
    for (const entry of this.receivers) this.retire(entry);
    this.receivers = this.queues.map((queue) => this.open(queue));
  }

  /** A receiver no longer in use: closed now, or once its last message is settled. */
  private retire(entry: ReceiverEntry): void {
    entry.retired = true;
    if (entry.inFlight === 0) this.closeRetired(entry);
    else this.retiring.add(entry);
  }

  /** Stops new deliveries and hands back the messages waiting for a slot. */
  async stop(): Promise<void> {
    if (!this.accepting) return;
    this.accepting = false;
    for (const r of this.receivers) clearTimeout(r.watchdog);
    const handedBack = [...this.waiting].map((handBack) => handBack());
    this.waiting.clear();
    // Stops new deliveries; links stay open so in-flight messages can still be settled.
    await Promise.allSettled([...handedBack, ...this.receivers.map((r) => r.close())]);
  }

  /** Stops, waits for the settlements under way, and closes every receiver. */
  async close(): Promise<void> {
    await this.stop();
    await Promise.allSettled([...this.settling]);
    const all = [...this.receivers, ...this.retiring];
    for (const r of all) r.locks.stop();
    await Promise.allSettled(all.map((r) => r.receiver.close()));
    this.receivers = [];
    this.retiring.clear();
  }

  private closeRetired(entry: ReceiverEntry): void {
    this.retiring.delete(entry);
    entry.locks.stop();
    void entry.receiver.close().catch(() => {});
  }

  private warning(error: unknown): string {
    return redactSecrets(String((error as Error)?.message ?? error), this.secrets);
  }

  private async settle(
    receiver: ServiceBusReceiver,
    message: ServiceBusReceivedMessage,
    outcome: MessageOutcome,
    queue: string,
  ): Promise<void> {
    const { settling } = this;
    const timeoutMs = this.host.options.operationTimeoutMs;
    // After a reconnect the SDK may settle a message from the old link on a delivery that
    // can no longer reach the broker and wait 60 s for an answer; bound the wait so a slot is
    // not held for it. The broker redelivers the message once its lock is gone.
    const work = new Promise<void>((resolve, reject) => {
      // No Promise.race: one promise and one timer per settlement, which runs for every message.
      const timer = setTimeout(() => {
        settling.delete(work);
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
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
      this.host.counters.settlementFailures++;
      const what = typeof outcome === 'string' ? outcome : 'dead-letter';
      this.host.logger.warn(
        `Could not ${what} a message on '${queue}'; it will be delivered again`,
        {
          messageId: String(message.messageId ?? ''),
          error: this.warning(error),
        },
      );
    }
  }

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
  private watch(entry: ReceiverEntry, queue: string): void {
    entry.lastErrorAt = Date.now();
    if (entry.watchdog !== undefined) return;
    let rechecks = 0;
    const check = () => {
      entry.watchdog = undefined;
      const index = this.receivers.indexOf(entry);
      if (!this.accepting || index < 0 || entry.lastMessageAt > entry.lastErrorAt) return;
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
      this.host.logger.info(
        `Receiving from '${queue}' restarts: nothing arrived after a link error`,
      );
      this.host.counters.receiverRestarts++;
      this.receivers[index] = this.open(queue);
      void entry.close().catch(() => {});
      this.retire(entry);
    };
    entry.watchdog = setTimeout(check, RECEIVE_STALL_MS);
    entry.watchdog.unref();
  }

  /**
   * A queue this endpoint reads was deleted under it: an instance queue whose
   * `autoDeleteOnIdle` ran out during a long outage, say. The SDK keeps retrying the attach,
   * so creating the queue again is enough; one attempt at a time per queue.
   */
  private recreate(queue: string): void {
    const { recreating, host } = this;
    if (recreating.has(queue) || !this.accepting) return;
    recreating.add(queue);
    host
      .ensureOwnQueue(queue)
      .then(
        () => {
          host.counters.queuesRecreated++;
          host.logger.warn(`Queue '${queue}' was gone; it has been created again`);
        },
        (error: unknown) =>
          host.logger.warn(`Queue '${queue}' is gone and could not be created again`, {
            error: this.warning(error),
          }),
      )
      .finally(() => recreating.delete(queue));
  }

  /**
   * Waits for one of `slots`; false if receiving stopped first, once the message is handed
   * back (the slot, when it comes, is given up). The SDK renews the message's lock meanwhile:
   * its StreamingReceiver starts the lock renewer on arrival, before `processMessage`.
   */
  private slotOrHandedBack(
    slots: QueueSlots,
    receiver: ServiceBusReceiver,
    message: ServiceBusReceivedMessage,
    queue: string,
  ): Promise<boolean> {
    const { waiting } = this;
    return new Promise<boolean>((resolve) => {
      const handBack = () => {
        const abandoned = this.settle(receiver, message, 'abandon', queue);
        void abandoned.then(() => resolve(false));
        return abandoned;
      };
      waiting.add(handBack);
      void slots.acquire().then(() => {
        if (waiting.delete(handBack)) resolve(true);
        else slots.release();
      });
    });
  }

  /** Opens a receiver on `queue` and starts its subscription. */
  private open(queue: string): ReceiverEntry {
    const { host } = this;
    const receive = this.receive as ReceiveSettings;
    const slots = this.slotsByQueue.get(queue) as QueueSlots;
    const receiver = host.client.createReceiver(queue, {
      receiveMode: 'peekLock',
      maxAutoLockRenewalDurationInMs: host.options.maxAutoLockRenewalDurationMs,
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
        if (!this.accepting) {
          // Stopping: hand it back at once for another instance.
          await this.settle(receiver, message, 'abandon', queue);
          return;
        }
        if (
          !slots.tryAcquire() &&
          !(await this.slotOrHandedBack(slots, receiver, message, queue))
        ) {
          return;
        }
        try {
          if (!this.accepting) {
            await this.settle(receiver, message, 'abandon', queue);
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
          await this.settle(receiver, message, outcome, queue);
        } finally {
          slots.release();
        }
      } finally {
        entry.locks.done(message);
        entry.inFlight--;
        if (entry.retired && entry.inFlight === 0) this.closeRetired(entry);
      }
    };
    const subscription = receiver.subscribe(
      {
        processMessage: handle,
        processError: async (args) => {
          host.counters.receiveErrors++;
          // Only a failing link can stall receiving; a failed lock renewal does not.
          if (args.errorSource === 'receive') {
            // The link is gone or going: the SDK stopped renewing its messages' locks.
            entry.locks.linkLost();
            this.watch(entry, queue);
          }
          if (isServiceBusError(args.error) && args.error.code === 'MessagingEntityNotFound') {
            this.recreate(queue);
          }
          host.logger.warn(`Receiving from '${queue}' failed; the SDK retries`, {
            error: redactSecrets(String(args.error?.message ?? args.error), this.secrets),
          });
        },
      },
      { autoCompleteMessages: false, maxConcurrentCalls: receive.concurrency },
    );
    const entry: ReceiverEntry = {
      receiver,
      locks: createLockKeeper(
        receiver,
        host.options.maxAutoLockRenewalDurationMs,
        (error, message) =>
          host.logger.warn(`Could not renew the lock of a message on '${queue}'`, {
            messageId: String(message.messageId ?? ''),
            error: this.warning(error),
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
  }
}
