import type { Logger } from '../logging/logger.js';

/**
 * The transport SPI version this core speaks. A transport states the version it implements;
 * core refuses a transport built for another version instead of failing in odd ways later.
 */
export const TRANSPORT_SPI_VERSION = 1;

/** What a transport can do natively. Core adapts to what is missing instead of guessing. */
export interface TransportCapabilities {
  /** Can deliver a message after a delay (`delayMs` sends, delayed retries). */
  readonly delayedDelivery: boolean;
  /** Delivers published events through the broker's own fan-out (exchanges, topics). */
  readonly nativePublishSubscribe: boolean;
  /** Largest message (body plus headers, in bytes) the transport accepts; core checks before sending. */
  readonly maxMessageSizeBytes: number;
  /** Reports how many times a message was delivered (`IncomingTransportMessage.deliveryCount`). */
  readonly deliveryCount: boolean;
  /** Queues, subscriptions and delays survive a restart of the process (false for in-memory). */
  readonly durable: boolean;
  /**
   * Has a dead-letter queue of its own (Service Bus): core may settle a message it cannot read
   * with a `dead-letter` outcome instead of copying it to the error queue. Absent means false.
   */
  readonly nativeDeadLetter?: boolean;
  /**
   * A queue is read in parts, each in an order of its own (Kafka's partitions): a message sent to
   * the back of a queue can come round before messages sent earlier to its other parts. Absent
   * means false: one queue, one order.
   */
  readonly partitionedQueues?: boolean;
  /**
   * Longest message id the broker takes, in UTF-8 bytes (RabbitMQ: 255, an AMQP short string).
   * Core refuses a longer `messageId` with a `UsageError` before dispatch. Absent: no limit.
   */
  readonly maxMessageIdBytes?: number;
  /**
   * Longest header name the broker takes, in UTF-8 bytes (RabbitMQ: 255). Core refuses a message
   * with a longer one with a `UsageError` before dispatch. Absent: no limit.
   */
  readonly maxHeaderNameBytes?: number;
  /**
   * Longest delay `delayMs` may ask for, in ms (only with `delayedDelivery`). Core refuses a
   * longer one with a `UsageError` at the call. Absent: any delay.
   */
  readonly maxDelayMs?: number;
}

/** Bytes and headers as they travel. Header names and values are the wire contract (docs/wire-format.md). */
export interface OutgoingTransportMessage {
  readonly messageId: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

/** Where an outgoing message goes: one queue, or every subscriber of an event type. */
export type TransportDestination =
  | { readonly kind: 'queue'; readonly queue: string }
  | { readonly kind: 'publish'; readonly messageType: string };

export interface TransportOperation {
  readonly message: OutgoingTransportMessage;
  readonly destination: TransportDestination;
  /** Deliver no earlier than this many milliseconds from now. Only set when `delayedDelivery` is true. */
  readonly delayMs?: number;
  /**
   * Express: losing this message costs no more than its absence (a reply only an in-memory
   * callback waits for, or a send the user marked `express`). The transport may carry it without
   * persistence, and `dispatch` need not wait for the broker to take responsibility for it: it may
   * resolve once the message is handed to the connection, and a failure after that is dropped
   * (ADR 13). Absent or false: durable. A transport without a cheaper mode ignores it.
   */
  readonly express?: boolean;
  /**
   * The received message `message` is a copy of (a move to the error queue, a return from it).
   * A transport that packs headers (ADR 8) should send `copyOf` as it arrived, its native
   * properties, headers and body byte for byte, with each header of `message.headers` that
   * `copyOf.headers` lacks or holds with another value as an entry of its own, and without the
   * headers of `copyOf.headers` that `message.headers` lacks. Where it cannot (the message came
   * from elsewhere, or a header to drop sits in a packed entry), it sends `message` as usual.
   */
  readonly copyOf?: IncomingTransportMessage;
}

export interface IncomingTransportMessage {
  /** The message id: the `tidings.message-id` header, or the native id when the header is missing. */
  readonly messageId: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
  /** The queue the message was received from. */
  readonly queue: string;
  /** 1 on first delivery, when the transport can tell (`capabilities.deliveryCount`). */
  readonly deliveryCount?: number;
  /**
   * Set when the transport could not read the message's native envelope (a packed header that is
   * not what the wire format says, say): why, for a person. Core treats the message as unreadable
   * (`MalformedMessageError` with this text) instead of guessing from what could be read.
   */
  readonly unreadableReason?: string;
}

/** Settle into the broker's own dead-letter queue, recording why (only with `nativeDeadLetter`). */
export interface DeadLetterOutcome {
  readonly kind: 'dead-letter';
  /** A short machine-readable reason, e.g. `TIDINGS_DESERIALIZATION`. */
  readonly reason: string;
  readonly description: string;
}

/**
 * How the transport settles a received message once core is done with it.
 * `complete`: the outcome (handled, retried later, moved to the error queue) is durable; remove it.
 * `abandon`: core could not make the outcome durable (or is stopping); make it available again.
 * A `DeadLetterOutcome` only reaches transports that declare `nativeDeadLetter`.
 */
export type MessageOutcome = 'complete' | 'abandon' | DeadLetterOutcome;

/** Core's callback for each received message. It never rejects; transports still guard against it. */
export type OnMessage = (message: IncomingTransportMessage) => Promise<MessageOutcome>;

/** The queues and subscriptions one endpoint needs; the transport creates them at `openEndpoint`. */
export interface EndpointTopology {
  readonly endpointName: string;
  /**
   * The endpoint's shared input queue, consumed by all its instances (competing consumers).
   * Absent for a send-only endpoint.
   */
  readonly inputQueue?: string;
  /**
   * This instance's own queue, where replies to its requests arrive. Nobody else consumes it, and
   * it should expire by itself once no consumer is left (the transport decides how).
   */
  readonly instanceQueue?: string;
  /** Where failed messages go. Created at start so moving a message there cannot fail for want of it. */
  readonly errorQueue: string;
  /** Event types whose publications the input queue receives. */
  readonly subscriptions: readonly string[];
}

export interface ReceiveSettings {
  /**
   * At most this many `onMessage` calls in flight at once for the input queue (with the event
   * subscriptions it receives), and, separately, at most this many for the instance queue:
   * replies have slots of their own, so handlers that await requests cannot hold every slot
   * their replies need.
   */
  readonly concurrency: number;
  readonly onMessage: OnMessage;
}

export interface TransportContext {
  readonly logger: Logger;
}

/** One endpoint's connection to the transport. */
export interface TransportEndpoint {
  /**
   * Sends the operations. Resolves only once the broker has taken responsibility for every one
   * (confirmed, fsynced, accepted). Rejects with a `TidingsError` (e.g. `DestinationNotFoundError`).
   */
  dispatch(operations: readonly TransportOperation[]): Promise<void>;
  /** Starts consuming the input and instance queues. */
  startReceiving(settings: ReceiveSettings): Promise<void>;
  /**
   * Resolves once, after `startReceiving`, every queue is being read: what is in them reaches
   * `onMessage` without further delay. Leave it out where that holds as soon as `startReceiving`
   * resolves. Kafka needs it: its consumer groups join in the background, which takes seconds.
   */
  whenReceiving?(): Promise<void>;
  /**
   * Stops taking new messages. Messages already handed to `onMessage` are still settled when their
   * promise resolves, until `close`.
   */
  stopReceiving(): Promise<void>;
  subscribe(messageType: string): Promise<void>;
  unsubscribe(messageType: string): Promise<void>;
  /** Waits for outstanding settlements and releases connections. */
  close(): Promise<void>;
}

/** A transport: one per process is typical; several endpoints may share it. */
export interface Transport {
  readonly spiVersion: typeof TRANSPORT_SPI_VERSION;
  /** Short name for logs and errors, e.g. `rabbitmq`. */
  readonly name: string;
  readonly capabilities: TransportCapabilities;
  /** Connects one endpoint and creates its topology (queues, error queue, subscriptions). */
  openEndpoint(topology: EndpointTopology, context: TransportContext): Promise<TransportEndpoint>;
}
