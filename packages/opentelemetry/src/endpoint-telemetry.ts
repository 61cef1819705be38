import type { Attributes, Tracer } from '@opentelemetry/api';
import type {
  EndpointInstrumentation,
  IncomingTransportMessage,
  InstrumentedEndpoint,
  Logger,
  MessageObserver,
  RequestObserver,
  TransportEndpoint,
} from '@tidings/core';
import { Attr, messagingSystem } from './attributes.js';
import type { TidingsMetrics } from './metrics.js';
import { ProcessObserver } from './process-observer.js';
import { TidingsRequestObserver } from './request-observer.js';
import { tracedConnection } from './traced-connection.js';

/** One endpoint's tracer, instruments and the attributes all its telemetry shares. */
export class EndpointTelemetry implements EndpointInstrumentation {
  readonly system: string;
  readonly endpointName: string;
  readonly logger: Logger;
  readonly connection: TransportEndpoint;
  /** Metric attributes by destination, operation and message type: one object each, reused. */
  private readonly metricAttributes = new Map<string, Attributes>();

  constructor(
    endpoint: InstrumentedEndpoint,
    connection: TransportEndpoint,
    readonly tracer: Tracer,
    readonly metrics: TidingsMetrics,
  ) {
    this.system = messagingSystem(endpoint.transportName);
    this.endpointName = endpoint.endpointName;
    this.logger = endpoint.logger;
    this.connection = tracedConnection(connection, this);
  }

  /** Low-cardinality attributes for metrics; cached, so recording allocates nothing. */
  attributesFor(
    operation: string,
    destination: string,
    messageType: string | undefined,
  ): Attributes {
    const key = `${operation}\u0000${destination}\u0000${messageType ?? ''}`;
    let attributes = this.metricAttributes.get(key);
    if (attributes === undefined) {
      attributes = {
        [Attr.MessagingSystem]: this.system,
        [Attr.OperationName]: operation,
        [Attr.DestinationName]: destination,
        ...(messageType !== undefined ? { [Attr.MessageType]: messageType } : {}),
      };
      // Bounded: a map that grew without end would be a leak, so past this it stops caching.
      if (this.metricAttributes.size < 10_000) this.metricAttributes.set(key, attributes);
    }
    return attributes;
  }

  received(message: IncomingTransportMessage): MessageObserver {
    return new ProcessObserver(this, message);
  }

  request(messageType: string, destination: string, messageId: string): RequestObserver {
    return new TidingsRequestObserver(this, messageType, destination, messageId);
  }
}
