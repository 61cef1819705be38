import type { Logger } from '../logging/logger.js';
import type {
  IncomingTransportMessage,
  MessageOutcome,
  TransportEndpoint,
  TransportOperation,
} from '../transport/transport.js';

/**
 * Observes an endpoint's work for tracing and metrics (`@tidings/opentelemetry` implements it).
 * Core calls it at a few points and never depends on what it does, so core itself needs no
 * telemetry library; without one (the default) core makes none of these calls. Implementations
 * must be cheap and must not throw. See docs/adr/0014-observability-through-an-instrumentation-hook.md.
 */
export interface Instrumentation {
  /** Wraps the endpoint's logger once, at creation: to add the active trace to each record, say. */
  wrapLogger?(logger: Logger): Logger;
  /**
   * Called at each start with the transport's connection. Every message the endpoint dispatches
   * (sends, replies, retries, moves to the error queue) goes through the connection it returns,
   * which may add headers (trace context) and time the dispatch. Undefined: nothing to observe
   * (no telemetry backend is registered), and the endpoint runs as without an instrumentation.
   */
  instrumentEndpoint(
    endpoint: InstrumentedEndpoint,
    connection: TransportEndpoint,
  ): EndpointInstrumentation | undefined;
}

/** What an endpoint tells its instrumentation about itself. */
export interface InstrumentedEndpoint {
  readonly endpointName: string;
  readonly instanceId: string | undefined;
  /** The transport's `name`, e.g. `rabbitmq`. */
  readonly transportName: string;
  /**
   * The transport's `maxMessageSizeBytes`. Core checks each message against it before dispatch;
   * headers the connection adds after (trace context) must not take a message past it.
   */
  readonly maxMessageSizeBytes: number;
  readonly logger: Logger;
}

export interface EndpointInstrumentation {
  /** What the endpoint dispatches through from now on. */
  readonly connection: TransportEndpoint;
  /** A message was received: the observer follows it to its outcome. */
  received(message: IncomingTransportMessage): MessageObserver;
  /** A request is about to be sent: the observer lasts until its reply, timeout or failure. */
  request(messageType: string, destination: string, messageId: string): RequestObserver;
  /**
   * Operations are about to be stored in the outbox, in the context that made them. They may be
   * dispatched later, by the outbox's dispatcher, where that context is gone: whatever the
   * dispatch needs of it (trace context) goes into their headers now.
   */
  storing?(operations: readonly TransportOperation[]): void;
}

/** What happens to a message after a failure, as the recoverability policy (or a stop) decided. */
export type FailureNext =
  | 'immediate-retry'
  | 'delayed-retry'
  | 'error-queue'
  | 'dead-letter'
  | 'discard'
  | 'abandon';

export interface MessageObserver {
  /**
   * Runs an attempt at handling (1 = the first), with the attempt's context active so the
   * handlers' own work (and what they send) belongs to it. A higher number starts a new attempt.
   */
  attempt<T>(attempt: number, run: () => T): T;
  /** The attempt failed, or the message could not be handled at all; `next` is what follows. */
  failed(error: unknown, next: FailureNext): void;
  /** Core is done with the message: the transport settles it with `outcome`. */
  settled(outcome: MessageOutcome): void;
}

export interface RequestObserver {
  /** Runs the request's registration and dispatch with the request's context active. */
  run<T>(fn: () => T): T;
  /** The request ended: with its reply (no error), or with the error it rejected with. */
  settled(error?: unknown): void;
}
