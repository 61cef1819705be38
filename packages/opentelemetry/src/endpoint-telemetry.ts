import {
  type Attributes,
  context,
  SpanKind,
  type SpanOptions,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type {
  EndpointInstrumentation,
  InstrumentedEndpoint,
  Logger,
  MessageObserver,
  RequestObserver,
} from '@tidings/core';
import type {
  IncomingTransportMessage,
  TransportEndpoint,
  TransportOperation,
} from '@tidings/core/transport';
import { Attr, messagingSystem } from './attributes.js';
import type { Tally, TidingsMetrics } from './metrics.js';
import { ProcessObserver } from './process-observer.js';
import { TidingsRequestObserver } from './request-observer.js';
import { ThreeKeyCache } from './three-key-cache.js';
import { tracedConnection } from './traced-connection.js';
import { propagatorIsW3c, TraceContextCodec } from './w3c-trace-context.js';

/** Past this many destination and message type pairs, span starts are built per span. */
const maxSpanStarts = 10_000;

const spanKinds: Readonly<Record<string, SpanKind>> = {
  process: SpanKind.CONSUMER,
  request: SpanKind.CLIENT,
};

/** A span's name and start options, shared by every span of an operation on a destination. */
export interface SpanStart {
  readonly name: string;
  readonly options: SpanOptions;
}

/**
 * One endpoint's tracer and instruments. Either may be missing (no SDK for it): what it would
 * record is skipped, not sent to a no-op.
 */
export class EndpointTelemetry implements EndpointInstrumentation {
  readonly system: string;
  readonly logger: Logger;
  /** The transport's limit, which the trace context written into a message must keep to. */
  readonly maxMessageSizeBytes: number;
  readonly connection: TransportEndpoint;
  /** Trace context in headers; the propagator is looked at once, at start, like the SDK. */
  readonly traceContext: TraceContextCodec;
  /** Tallies without an error type, by operation, destination and message type ('' for none). */
  private readonly tallies: ThreeKeyCache<Tally> | undefined;
  /**
   * What a span shares with every span of its operation, destination and message type (name,
   * kind, the attributes samplers see): nothing built per span. Shared, never changed; not frozen,
   * so that a tracer writing into its options could not make a dispatch throw (the SDK copies
   * them). Per-message attributes are set on recording spans only.
   */
  private readonly spanStarts: ThreeKeyCache<SpanStart>;

  constructor(
    endpoint: InstrumentedEndpoint,
    connection: TransportEndpoint,
    readonly tracer: Tracer | undefined,
    readonly metrics: TidingsMetrics | undefined,
  ) {
    this.system = messagingSystem(endpoint.transportName);
    this.logger = endpoint.logger;
    this.maxMessageSizeBytes = endpoint.maxMessageSizeBytes;
    this.traceContext = new TraceContextCodec(
      tracer !== undefined && propagatorIsW3c(),
      this.logger,
    );
    const system = this.system;
    this.tallies =
      metrics === undefined
        ? undefined
        : new ThreeKeyCache(Number.POSITIVE_INFINITY, (operation, destination, type) => {
            const tally = metrics.tally(system, operation, destination, type || undefined);
            // The metrics' own bound: past it they give their overflow tally, not kept here.
            return { value: tally, keep: tally.attributes[Attr.DestinationName] !== undefined };
          });
    this.spanStarts = new ThreeKeyCache(maxSpanStarts, (operation, destination, type) => {
      const attributes: Attributes = { [Attr.MessagingSystem]: system };
      // A request has no operation type in the conventions.
      if (operation !== 'request') {
        attributes[Attr.OperationType] = operation === 'process' ? 'process' : 'send';
      }
      attributes[Attr.OperationName] = operation;
      attributes[Attr.DestinationName] = destination;
      if (type !== '') attributes[Attr.MessageType] = type;
      const options: SpanOptions = {
        kind: spanKinds[operation] ?? SpanKind.PRODUCER,
        attributes,
      };
      return { value: { name: `${operation} ${destination}`, options }, keep: true };
    });
    this.connection = tracedConnection(connection, this);
  }

  /** The counts of one operation on one destination and message type; undefined without metrics. */
  tally(
    operation: string,
    destination: string,
    messageType: string | undefined,
    errorType?: string,
  ): Tally | undefined {
    if (errorType === undefined) {
      return this.tallies?.get(operation, destination, messageType ?? '');
    }
    // Failures are rare: their tallies are looked up by the metrics' own key.
    return this.metrics?.tally(this.system, operation, destination, messageType, errorType);
  }

  /** How a `send`, `publish`, `process` or `request` span starts: name, kind, shared attributes. */
  spanStart(operation: string, destination: string, messageType: string | undefined): SpanStart {
    return this.spanStarts.get(operation, destination, messageType ?? '');
  }

  received(message: IncomingTransportMessage): MessageObserver {
    return new ProcessObserver(this, message);
  }

  request(messageType: string, destination: string, messageId: string): RequestObserver {
    return new TidingsRequestObserver(this, messageType, destination, messageId);
  }

  /**
   * Stamps operations bound for the outbox with the active span's context: if the outbox's
   * dispatcher sends them later, out of this context, their `send` spans still continue it.
   */
  storing(operations: readonly TransportOperation[]): void {
    if (this.tracer === undefined) return;
    const active = context.active();
    const span = trace.getSpan(active);
    if (span === undefined) return;
    for (const operation of operations) {
      const headers = operation.message.headers as Record<string, string>;
      if (headers.traceparent === undefined) this.traceContext.inject(headers, active, span);
    }
  }
}
