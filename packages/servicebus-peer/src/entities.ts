import { randomUUID } from 'node:crypto';
import type { Message, Sender } from 'rhea';
import { hasCreditLeft } from './rhea-internals.js';

/** Options a queue or subscription accepts; the names follow ServiceBusAdministrationClient's. */
export interface EntityOptions {
  /** Stored and enforced by a sweep; Service Bus's minimum is 5 minutes. */
  readonly autoDeleteOnIdleMs?: number;
  /** After this many deliveries an abandon dead-letters the message (MaxDeliveryCountExceeded). @default 10 */
  readonly maxDeliveryCount?: number;
  /** How long a peek-lock lasts before the message is available again. @default 60_000 */
  readonly lockDurationMs?: number;
  /** Drop a message whose message id was seen within this window (duplicate detection). */
  readonly duplicateDetectionWindowMs?: number;
  /** Forward every message to this queue instead of keeping it (subscriptions only here). */
  readonly forwardTo?: string;
}

export interface StoredMessage {
  readonly sequenceNumber: number;
  readonly message: Message;
  readonly enqueuedAt: Date;
  /** Deliveries so far; sent as the header's delivery_count (0 on first delivery). */
  deliveryCount: number;
}

export interface Lock {
  readonly token: string;
  readonly stored: StoredMessage;
  readonly link: Sender;
  lockedUntil: number;
}

export interface Consumer {
  readonly link: Sender;
}

let nextSequence = 1;

/**
 * A queue, a subscription or a dead-letter queue: what a receiver link reads from. Messages
 * wait in FIFO order; a delivery locks one (peek-lock) until it is settled, abandoned or the
 * lock expires.
 */
export class MessageEntity {
  readonly available: StoredMessage[] = [];
  readonly locks = new Map<string, Lock>();
  readonly scheduled = new Map<number, { stored: StoredMessage; timer: NodeJS.Timeout }>();
  readonly consumers: Consumer[] = [];
  readonly seenIds = new Map<string, number>();
  lastActivity = Date.now();
  private roundRobin = 0;
  private pumping = false;
  deadLetter: MessageEntity | undefined;

  constructor(
    readonly path: string,
    readonly options: EntityOptions,
    private readonly deliver: (consumer: Consumer, stored: StoredMessage, token: string) => void,
    private readonly forward?: (message: Message) => void,
  ) {}

  get lockDurationMs(): number {
    return this.options.lockDurationMs ?? 60_000;
  }

  get maxDeliveryCount(): number {
    return this.options.maxDeliveryCount ?? 10;
  }

  /** Accepts a message sent to this entity. Returns false when dropped as a duplicate. */
  enqueue(message: Message): boolean {
    this.lastActivity = Date.now();
    const window = this.options.duplicateDetectionWindowMs;
    const id = message.message_id === undefined ? undefined : String(message.message_id);
    if (window !== undefined && id !== undefined) {
      const seen = this.seenIds.get(id);
      if (seen !== undefined && Date.now() - seen < window) return false;
      this.seenIds.set(id, Date.now());
    }
    if (this.forward !== undefined) {
      this.forward(message);
      return true;
    }
    this.available.push({
      sequenceNumber: nextSequence++,
      message,
      enqueuedAt: new Date(),
      deliveryCount: 0,
    });
    this.pump();
    return true;
  }

  /** Holds a message until `at` (scheduled messages); returns its sequence number for cancelling. */
  schedule(message: Message, at: Date): number {
    const stored: StoredMessage = {
      sequenceNumber: nextSequence++,
      message,
      enqueuedAt: at,
      deliveryCount: 0,
    };
    const timer = setTimeout(
      () => {
        this.scheduled.delete(stored.sequenceNumber);
        this.enqueue(message);
      },
      Math.max(0, at.getTime() - Date.now()),
    );
    this.scheduled.set(stored.sequenceNumber, { stored, timer });
    return stored.sequenceNumber;
  }

  cancelScheduled(sequenceNumber: number): void {
    const entry = this.scheduled.get(sequenceNumber);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    this.scheduled.delete(sequenceNumber);
  }

  /** Attaching is not activity: Service Bus deletes an idle queue under an attached receiver. */
  addConsumer(consumer: Consumer): void {
    this.consumers.push(consumer);
  }

  /**
   * The link went away. Service Bus keeps its messages locked until their locks expire (they can
   * still be settled by lock token); `release` makes them available at once instead (lenient).
   */
  removeConsumer(link: Sender, release = false): void {
    const index = this.consumers.findIndex((c) => c.link === link);
    if (index >= 0) this.consumers.splice(index, 1);
    if (release) {
      for (const lock of [...this.locks.values()]) {
        if (lock.link === link) this.unlock(lock.token, 'release');
      }
    }
    this.pump();
  }

  /** Hands available messages to consumers that have credit, round robin (competing consumers). */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.available.length > 0) {
        const consumer = this.nextConsumer();
        if (consumer === undefined) return;
        const stored = this.available.shift() as StoredMessage;
        // A receive is activity (auto-delete on idle counts it).
        this.lastActivity = Date.now();
        // A random GUID as 32 hex digits. randomUUID draws from a buffered pool; randomBytes(16) per
        // delivery cost more CPU than the rest of the peer's delivery path together.
        const token = randomUUID().replaceAll('-', '');
        this.locks.set(token, {
          token,
          stored,
          link: consumer.link,
          lockedUntil: Date.now() + this.lockDurationMs,
        });
        this.deliver(consumer, stored, token);
      }
    } finally {
      this.pumping = false;
    }
  }

  private nextConsumer(): Consumer | undefined {
    const count = this.consumers.length;
    for (let i = 0; i < count; i++) {
      const index = (this.roundRobin + i) % count;
      const consumer = this.consumers[index] as Consumer;
      if (consumer.link.is_open() && hasCreditLeft(consumer.link)) {
        this.roundRobin = (index + 1) % count;
        return consumer;
      }
    }
    return undefined;
  }

  /**
   * Ends a lock. `complete` removes the message; `abandon`/`release` put it back at the head
   * (counted as a delivery, dead-lettered past maxDeliveryCount); `deadletter` moves it;
   * `defer` drops it from delivery (deferred messages are not modelled further).
   */
  unlock(
    token: string,
    outcome: 'complete' | 'abandon' | 'release' | 'deadletter' | 'defer',
    deadLetter?: { reason?: string; description?: string },
  ): boolean {
    const lock = this.locks.get(token);
    if (lock === undefined) return false;
    this.locks.delete(token);
    this.lastActivity = Date.now();
    const stored = lock.stored;
    stored.deliveryCount++;
    if (outcome === 'abandon' || outcome === 'release') {
      if (stored.deliveryCount >= this.maxDeliveryCount) {
        this.moveToDeadLetter(stored, {
          reason: 'MaxDeliveryCountExceeded',
          description: `Message could not be consumed after ${this.maxDeliveryCount} delivery attempts.`,
        });
      } else {
        this.available.unshift(stored);
      }
      this.pump();
    } else if (outcome === 'deadletter') {
      this.moveToDeadLetter(stored, deadLetter ?? {});
    }
    return true;
  }

  renew(token: string): Date | undefined {
    const lock = this.locks.get(token);
    if (lock === undefined) return undefined;
    lock.lockedUntil = Date.now() + this.lockDurationMs;
    return new Date(lock.lockedUntil);
  }

  /** Called by the peer's sweep: expired locks make their messages available again. */
  expireLocks(now: number): void {
    for (const lock of [...this.locks.values()]) {
      if (lock.lockedUntil <= now) this.unlock(lock.token, 'abandon');
    }
  }

  private moveToDeadLetter(
    stored: StoredMessage,
    info: { reason?: string | undefined; description?: string | undefined },
  ): void {
    // Service Bus records the reason as application properties DeadLetterReason and
    // DeadLetterErrorDescription (sdk/servicebus/service-bus/src/serviceBusMessage.ts, fromRheaMessage).
    const message: Message = {
      ...stored.message,
      application_properties: {
        ...stored.message.application_properties,
        ...(info.reason !== undefined ? { DeadLetterReason: info.reason } : {}),
        ...(info.description !== undefined ? { DeadLetterErrorDescription: info.description } : {}),
      },
      message_annotations: {
        ...stored.message.message_annotations,
        'x-opt-deadletter-source': this.path,
      },
    };
    this.deadLetter?.enqueue(message);
  }

  /** Messages in order, for peek: available ones (locked ones excluded). */
  peek(fromSequenceNumber: number, count: number): StoredMessage[] {
    return this.available.filter((s) => s.sequenceNumber >= fromSequenceNumber).slice(0, count);
  }

  dispose(): void {
    for (const { timer } of this.scheduled.values()) clearTimeout(timer);
    this.scheduled.clear();
    this.available.length = 0;
    this.locks.clear();
  }
}

/** A topic copies each message it is sent to every subscription. */
export class Topic {
  readonly subscriptions = new Map<string, MessageEntity>();
  readonly scheduled = new Map<number, NodeJS.Timeout>();
  private nextSequence = 1;
  constructor(readonly path: string) {}
  enqueue(message: Message): boolean {
    for (const subscription of this.subscriptions.values()) subscription.enqueue({ ...message });
    return true;
  }
  schedule(message: Message, at: Date): number {
    const sequenceNumber = 1_000_000_000 + this.nextSequence++;
    const timer = setTimeout(
      () => {
        this.scheduled.delete(sequenceNumber);
        this.enqueue(message);
      },
      Math.max(0, at.getTime() - Date.now()),
    );
    this.scheduled.set(sequenceNumber, timer);
    return sequenceNumber;
  }
  cancelScheduled(sequenceNumber: number): void {
    clearTimeout(this.scheduled.get(sequenceNumber));
    this.scheduled.delete(sequenceNumber);
  }
  dispose(): void {
    for (const timer of this.scheduled.values()) clearTimeout(timer);
    for (const subscription of this.subscriptions.values()) subscription.dispose();
  }
}

export type SendTarget = MessageEntity | Topic;
