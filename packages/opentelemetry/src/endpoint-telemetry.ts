import type { Tracer } from '@opentelemetry/api';
import type {
  EndpointInstrumentation,
  IncomingTransportMessage,
  InstrumentedEndpoint,
  Logger,
  MessageObserver,
  RequestObserver,
  TransportEndpoint,
} from '@tidings/core';
import { messagingSystem } from './attributes.js';
import type { Tally, TidingsMetrics } from './metrics.js';
import { ProcessObserver } from './process-observer.js';
import { TidingsRequestObserver } from './request-observer.js';
import { tracedConnection } from './traced-connection.js';

/**
 * One endpoint's tracer and instruments. Either may be missing (no SDK for it): what it would
 * record is skipped, not sent to a no-op.
 */
export class EndpointTelemetry implements EndpointInstrumentation {
  readonly system: string;
  readonly logger: Logger;
  readonly connection: TransportEndpoint;

  constructor(
    endpoint: InstrumentedEndpoint,
    connection: TransportEndpoint,
    readonly tracer: Tracer | undefined,
    readonly metrics: TidingsMetrics | undefined,
  ) {
    this.system = messagingSystem(endpoint.transportName);
    this.logger = endpoint.logger;
    this.connection = tracedConnection(connection, this);
  }

  /** The counts of one operation on one destination and message type; undefined without metrics. */
  tally(
    operation: string,
    destination: string,
    messageType: string | undefined,
    errorType?: string,
  ): Tally | undefined {
    return this.metrics?.tally(this.system, operation, destination, messageType, errorType);
  }

  received(message: IncomingTransportMessage): MessageObserver {
    return new ProcessObserver(this, message);
  }

  request(messageType: string, destination: string, messageId: string): RequestObserver {
    return new TidingsRequestObserver(this, messageType, destination, messageId);
  }
}
