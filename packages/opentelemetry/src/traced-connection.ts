import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { Headers } from '@tidings/core';
import {
  fitsWithin,
  type TransportEndpoint,
  type TransportOperation,
} from '@tidings/core/transport';
import { Attr, errorType } from './attributes.js';
import type { EndpointTelemetry } from './endpoint-telemetry.js';
import type { Tally } from './metrics.js';

/**
 * The endpoint's connection, with every dispatch traced and counted: a `send <destination>`
 * (`publish <type>`) PRODUCER span per message, child of the active context, and that span's
 * context in the message's headers.
 */
export function tracedConnection(
  inner: TransportEndpoint,
  telemetry: EndpointTelemetry,
): TransportEndpoint {
  const traced: TransportEndpoint = {
    dispatch: (operations) => dispatchTraced(inner, telemetry, operations),
    startReceiving: (settings) => inner.startReceiving(settings),
    stopReceiving: () => inner.stopReceiving(),
    subscribe: (messageType) => inner.subscribe(messageType),
    unsubscribe: (messageType) => inner.unsubscribe(messageType),
    close: () => inner.close(),
  };
  const whenReceiving = inner.whenReceiving;
  if (whenReceiving !== undefined) traced.whenReceiving = () => whenReceiving.call(inner);
  return traced;
}

/** What one dispatch ends: a span and a tally per operation (arrays only for batches). */
class DispatchObservation {
  /** Timed for the send duration only: without metrics, no clock read. */
  private readonly startedAt: number;

  constructor(
    private readonly telemetry: EndpointTelemetry,
    private readonly operations: readonly TransportOperation[],
    private readonly spans: Span | (Span | undefined)[] | undefined,
    private readonly tallies: Tally | (Tally | undefined)[] | undefined,
  ) {
    this.startedAt = telemetry.metrics === undefined ? 0 : performance.now();
  }

  ended(error?: unknown): void {
    const metrics = this.telemetry.metrics;
    const seconds = metrics === undefined ? 0 : (performance.now() - this.startedAt) / 1000;
    const type = error === undefined ? undefined : errorType(error);
    const { spans, tallies, operations } = this;
    for (let i = 0; i < operations.length; i++) {
      let tally = Array.isArray(tallies) ? tallies[i] : tallies;
      if (type !== undefined && metrics !== undefined) {
        const operation = operations[i] as TransportOperation;
        tally = this.telemetry.tally(
          operationName(operation),
          destinationName(operation),
          operation.message.headers[Headers.MessageType],
          type,
        );
      }
      if (tally !== undefined) {
        tally.sent++;
        metrics?.sendDuration.record(seconds, tally.attributes);
      }
      const span = Array.isArray(spans) ? spans[i] : spans;
      if (span === undefined) continue;
      if (type !== undefined) {
        span.recordException(error as Error);
        span.setAttribute(Attr.ErrorType, type);
        span.setStatus({ code: SpanStatusCode.ERROR, message: String((error as Error)?.message) });
      }
      span.end();
    }
  }
}

/** `send`, or `publish` for an event. */
function operationName(operation: TransportOperation): string {
  return operation.destination.kind === 'queue' ? 'send' : 'publish';
}

/** The queue, or the message type for a publish. */
function destinationName(operation: TransportOperation): string {
  const destination = operation.destination;
  return destination.kind === 'queue' ? destination.queue : destination.messageType;
}

function startSpan(
  tracer: Tracer,
  telemetry: EndpointTelemetry,
  operation: TransportOperation,
  operationName: string,
  destination: string,
  parent: Context,
): Span {
  const { headers, messageId } = operation.message;
  const start = telemetry.spanStart(operationName, destination, headers[Headers.MessageType]);
  const span = tracer.startSpan(start.name, start.options, parent);
  if (span.isRecording()) {
    span.setAttribute(Attr.MessageId, messageId);
    const conversationId = headers[Headers.ConversationId];
    if (conversationId !== undefined) span.setAttribute(Attr.ConversationId, conversationId);
    const intent = headers[Headers.Intent];
    if (intent !== undefined) span.setAttribute(Attr.Intent, intent);
    if (operation.delayMs !== undefined) span.setAttribute(Attr.DelayMs, operation.delayMs);
  }
  writeTraceContext(telemetry, operation, parent, span);
  return span;
}

/** The context stamped into a stored operation's headers, else the active one. */
function storedParent(
  telemetry: EndpointTelemetry,
  operation: TransportOperation,
  active: Context,
): Context {
  const { headers, messageId } = operation.message;
  if (headers.traceparent === undefined) return active;
  return telemetry.traceContext.extract(headers, messageId);
}

function dispatchTraced(
  inner: TransportEndpoint,
  telemetry: EndpointTelemetry,
  operations: readonly TransportOperation[],
): Promise<void> {
  const tracer = telemetry.tracer;
  const active = tracer === undefined ? ROOT_CONTEXT : context.active();
  // Nothing active (the outbox's dispatcher sending a stored record): each send continues the
  // context stamped into its headers when it was stored.
  const fromHeaders = tracer !== undefined && trace.getSpan(active) === undefined;
  let spans: Span | (Span | undefined)[] | undefined;
  let tallies: Tally | (Tally | undefined)[] | undefined;
  if (operations.length === 1) {
    const operation = operations[0] as TransportOperation;
    const name = operationName(operation);
    const destination = destinationName(operation);
    if (tracer !== undefined) {
      const parent = fromHeaders ? storedParent(telemetry, operation, active) : active;
      spans = startSpan(tracer, telemetry, operation, name, destination, parent);
    }
    tallies = telemetry.tally(name, destination, operation.message.headers[Headers.MessageType]);
  } else {
    const spanList: (Span | undefined)[] = [];
    const tallyList: (Tally | undefined)[] = [];
    for (const operation of operations) {
      const name = operationName(operation);
      const destination = destinationName(operation);
      spanList.push(
        tracer === undefined
          ? undefined
          : startSpan(
              tracer,
              telemetry,
              operation,
              name,
              destination,
              fromHeaders ? storedParent(telemetry, operation, active) : active,
            ),
      );
      tallyList.push(
        telemetry.tally(name, destination, operation.message.headers[Headers.MessageType]),
      );
    }
    spans = spanList;
    tallies = tallyList;
  }
  const observation = new DispatchObservation(telemetry, operations, spans, tallies);
  let dispatched: Promise<void>;
  try {
    dispatched = inner.dispatch(operations);
  } catch (error) {
    observation.ended(error);
    throw error;
  }
  return dispatched.then(
    () => observation.ended(),
    (error: unknown) => {
      observation.ended(error);
      throw error;
    },
  );
}

/**
 * Writes the send span's trace context (W3C `traceparent`, `tracestate`, `baggage` by default)
 * into the operation's headers. In place: the headers were made for this dispatch (built, or
 * copied for a retry or an error-queue move), nothing reads them after, and a copy per message
 * costs more than the rest of the wrapper (a new object shape for the receiver to read too). A
 * copied message drops the context it carried first, so the next hop continues from this send.
 */
function writeTraceContext(
  telemetry: EndpointTelemetry,
  operation: TransportOperation,
  parent: Context,
  span: Span,
): void {
  const headers = operation.message.headers as Record<string, string>;
  if (
    headers.traceparent !== undefined ||
    headers.tracestate !== undefined ||
    headers.baggage !== undefined
  ) {
    for (const name of propagation.fields()) delete headers[name];
  }
  telemetry.traceContext.inject(headers, parent, span);
  // Core checked the message's size before these headers: a message near the transport's limit
  // goes without them rather than failing because tracing is on. Its trace ends at this send.
  if (!fitsWithin(headers, operation.message.body, telemetry.maxMessageSizeBytes)) {
    for (const name of propagation.fields()) delete headers[name];
    telemetry.logger.debug(
      "Sent without trace context: with it the message would exceed the transport's size limit",
      {
        messageId: operation.message.messageId,
        maxMessageSizeBytes: telemetry.maxMessageSizeBytes,
      },
    );
  }
}
