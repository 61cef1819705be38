import { checkWholeNumber } from '../configuration/option-checks.js';
import { DestinationNotFoundError } from '../errors.js';
import { type LongTimer, setLongTimeout } from '../long-timer.js';
import {
  type EndpointTopology,
  type IncomingTransportMessage,
  type MessageOutcome,
  type ReceiveSettings,
  TRANSPORT_SPI_VERSION,
  type Transport,
  type TransportCapabilities,
  type TransportEndpoint,
  type TransportOperation,
} from './transport.js';

export interface InMemoryTransportOptions {
  /**
   * Largest message accepted, body plus headers, in bytes.
   * @default 4_194_304 (4 MiB)
   */
  readonly maxMessageSizeBytes?: number;
}

export const inMemoryTransportDefaults = {
  maxMessageSizeBytes: 4 * 1024 * 1024,
} as const satisfies Required<InMemoryTransportOptions>;

/** The in-memory transport plus inspection helpers for tests and tools. */
export interface InMemoryTransport extends Transport {
  /** Messages waiting in a queue (not counting those being handled); 0 for an unknown queue. */
  queueDepth(queue: string): number;
  /** Names of the queues that exist. */
  queues(): string[];
  /** Messages scheduled for later delivery and not yet due. */
  readonly scheduledCount: number;
}

interface StoredMessage {
  readonly messageId: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
  deliveryCount: number;
}

/** A FIFO with O(1) push and shift, compacted now and then. */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  unshift(item: T): void {
    if (this.head > 0) this.items[--this.head] = item;
    else this.items.unshift(item);
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined as T;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

class Consumer {
  inFlight = 0;
  active = true;
  constructor(
    readonly settings: ReceiveSettings,
    readonly queue: MemoryQueue,
  ) {}
  get hasCapacity(): boolean {
    return this.active && this.inFlight < this.settings.concurrency;
  }
}

class MemoryQueue {
  readonly messages = new Fifo<StoredMessage>();
  consumers: Consumer[] = [];
  private nextConsumer = 0;
  private scheduled = false;

  constructor(readonly name: string) {}

  enqueue(message: StoredMessage, front = false): void {
    if (front) this.messages.unshift(message);
    else this.messages.push(message);
    this.schedulePump();
  }

  schedulePump(): void {
    if (this.scheduled || this.consumers.length === 0) return;
    this.scheduled = true;
    // setImmediate, not a microtask: an endless stream must still let I/O and timers run.
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.messages.length > 0) {
      const consumer = this.pickConsumer();
      if (consumer === undefined) return;
      const message = this.messages.shift() as StoredMessage;
      this.deliver(consumer, message);
    }
  }

  /** Round-robin over consumers with a free slot: competing consumers share the queue. */
  private pickConsumer(): Consumer | undefined {
    const count = this.consumers.length;
    for (let i = 0; i < count; i++) {
      const index = (this.nextConsumer + i) % count;
      const consumer = this.consumers[index] as Consumer;
      if (consumer.hasCapacity) {
        this.nextConsumer = (index + 1) % count;
        return consumer;
      }
    }
    return undefined;
  }

  private deliver(consumer: Consumer, message: StoredMessage): void {
    consumer.inFlight++;
    message.deliveryCount++;
    const incoming: IncomingTransportMessage = {
      messageId: message.messageId,
      headers: message.headers,
      body: message.body,
      queue: this.name,
      deliveryCount: message.deliveryCount,
    };
    const settle = (outcome: MessageOutcome) => {
      consumer.inFlight--;
      if (outcome !== 'complete') this.enqueue(message, true);
      consumer.queue.schedulePump();
    };
    let result: Promise<MessageOutcome>;
    try {
      result = consumer.settings.onMessage(incoming);
    } catch {
      settle('abandon');
      return;
    }
    result.then(settle, () => settle('abandon'));
  }
}

/**
 * The embedded default: queues, delays and subscriptions in this process's memory. Several
 * endpoints in one process share one instance. Nothing survives the process.
 */
export function createInMemoryTransport(options: InMemoryTransportOptions = {}): InMemoryTransport {
  const maxMessageSizeBytes = checkWholeNumber(
    'maxMessageSizeBytes',
    options.maxMessageSizeBytes ?? inMemoryTransportDefaults.maxMessageSizeBytes,
  );
  const capabilities: TransportCapabilities = {
    delayedDelivery: true,
    nativePublishSubscribe: true,
    maxMessageSizeBytes,
    deliveryCount: true,
    durable: false,
  };
  const queues = new Map<string, MemoryQueue>();
  const subscribers = new Map<string, Set<string>>();
  const timers = new Set<LongTimer>();

  const ensureQueue = (name: string): MemoryQueue => {
    let queue = queues.get(name);
    if (queue === undefined) {
      queue = new MemoryQueue(name);
      queues.set(name, queue);
    }
    return queue;
  };

  const targetsOf = (operation: TransportOperation): MemoryQueue[] => {
    const destination = operation.destination;
    if (destination.kind === 'queue') {
      const queue = queues.get(destination.queue);
      if (queue === undefined) throw new DestinationNotFoundError(destination.queue);
      return [queue];
    }
    const names = subscribers.get(destination.messageType);
    return names ? [...names].map(ensureQueue) : [];
  };

  const deliverLater = (targets: MemoryQueue[], operation: TransportOperation): void => {
    const enqueue = () => {
      for (const queue of targets) {
        queue.enqueue({
          messageId: operation.message.messageId,
          headers: operation.message.headers,
          body: operation.message.body,
          deliveryCount: 0,
        });
      }
    };
    const delay = operation.delayMs ?? 0;
    if (delay <= 0) {
      enqueue();
      return;
    }
    // A process with only delayed messages left may exit: nothing in memory survives it anyway.
    const timer = setLongTimeout(
      () => {
        timers.delete(timer);
        enqueue();
      },
      delay,
      { unref: true },
    );
    timers.add(timer);
  };

  return {
    spiVersion: TRANSPORT_SPI_VERSION,
    name: 'in-memory',
    capabilities,
    queueDepth: (queue) => queues.get(queue)?.messages.length ?? 0,
    queues: () => [...queues.keys()],
    get scheduledCount() {
      return timers.size;
    },

    async openEndpoint(topology: EndpointTopology): Promise<TransportEndpoint> {
      const own = [topology.inputQueue, topology.instanceQueue]
        .filter((name): name is string => name !== undefined)
        .map(ensureQueue);
      ensureQueue(topology.errorQueue);
      const subscribe = async (messageType: string) => {
        if (topology.inputQueue === undefined) return;
        let names = subscribers.get(messageType);
        if (names === undefined) {
          names = new Set();
          subscribers.set(messageType, names);
        }
        names.add(topology.inputQueue);
      };
      for (const messageType of topology.subscriptions) await subscribe(messageType);
      /** One per queue: the input and instance queues each get the full concurrency. */
      let consumers: Consumer[] = [];
      const stopReceiving = async () => {
        const stopping = consumers;
        consumers = [];
        for (const consumer of stopping) {
          consumer.active = false;
          consumer.queue.consumers = consumer.queue.consumers.filter((c) => c !== consumer);
        }
      };

      return {
        async dispatch(operations) {
          // Resolve every destination first so a batch with one bad destination sends nothing.
          const planned = operations.map((operation) => [targetsOf(operation), operation] as const);
          for (const [targets, operation] of planned) deliverLater(targets, operation);
        },
        async startReceiving(settings) {
          if (consumers.length > 0) return;
          consumers = own.map((queue) => new Consumer(settings, queue));
          for (const consumer of consumers) {
            consumer.queue.consumers.push(consumer);
            consumer.queue.schedulePump();
          }
        },
        stopReceiving,
        subscribe,
        async unsubscribe(messageType) {
          if (topology.inputQueue !== undefined) {
            subscribers.get(messageType)?.delete(topology.inputQueue);
          }
        },
        close: stopReceiving,
      };
    },
  };
}
