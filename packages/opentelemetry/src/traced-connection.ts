import {
  type Attributes,
  type Context,
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { Headers, type TransportEndpoint, type TransportOperation } from '@tidings/core';
import { Attr, errorType } from './attributes.js';
import type { EndpointTelemetry } from './endpoint-telemetry.js';
import { headerSetter } from './header-carrier.js';

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

interface Sent {
  readonly operationName: string;
  readonly destination: string;
  readonly messageType: string | undefined;
  readonly span: Span | undefined;
}

function dispatchTraced(
  inner: TransportEndpoint,
  telemetry: EndpointTelemetry,
  operations: readonly TransportOperation[],
): Promise<void> {
  const tracer = telemetry.tracer;
  const parent = tracer === undefined ? undefined : context.active();
  const sent: Sent[] = [];
  for (let i = 0; i < operations.length; i++) {
    const operation = operations[i] as TransportOperation;
    const { headers } = operation.message;
    const isPublish = operation.destination.kind === 'publish';
    const destination =
      operation.destination.kind === 'queue'
        ? operation.destination.queue
        : operation.destination.messageType;
    const operationName = isPublish ? 'publish' : 'send';
    const messageType = headers[Headers.MessageType];
    let span: Span | undefined;
    if (tracer !== undefined) {
      const attributes: Attributes = {
        [Attr.MessagingSystem]: telemetry.system,
        [Attr.OperationType]: 'send',
        [Attr.OperationName]: operationName,
        [Attr.DestinationName]: destination,
        [Attr.MessageId]: operation.message.messageId,
      };
      const conversationId = headers[Headers.ConversationId];
      if (conversationId !== undefined) attributes[Attr.ConversationId] = conversationId;
      if (messageType !== undefined) attributes[Attr.MessageType] = messageType;
      const intent = headers[Headers.Intent];
      if (intent !== undefined) attributes[Attr.Intent] = intent;
      if (operation.delayMs !== undefined) attributes[Attr.DelayMs] = operation.delayMs;
      span = tracer.startSpan(
        `${operationName} ${destination}`,
        { kind: SpanKind.PRODUCER, attributes },
        parent,
      );
      writeTraceContext(operation, trace.setSpan(parent as Context, span));
    }
    sent.push({ operationName, destination, messageType, span });
  }
  const startedAt = performance.now();
  const ended = (error?: unknown) => {
    const seconds = (performance.now() - startedAt) / 1000;
    const type = error === undefined ? undefined : errorType(error);
    for (const { operationName, destination, messageType, span } of sent) {
      const tally = telemetry.tally(operationName, destination, messageType, type);
      if (tally !== undefined) {
        tally.sent++;
        telemetry.metrics?.sendDuration.record(seconds, tally.attributes);
      }
      if (span === undefined) continue;
      if (type !== undefined) {
        span.recordException(error as Error);
        span.setAttribute(Attr.ErrorType, type);
        span.setStatus({ code: SpanStatusCode.ERROR, message: String((error as Error)?.message) });
      }
      span.end();
    }
  };
  let dispatched: Promise<void>;
  try {
    dispatched = inner.dispatch(operations);
  } catch (error) {
    ended(error);
    throw error;
  }
  return dispatched.then(
    () => ended(),
    (error: unknown) => {
      ended(error);
      throw error;
    },
  );
}

/**
 * Writes the trace context the propagator gives (W3C `traceparent`, `tracestate`, `baggage` by
 * default) into the operation's headers. In place: the headers were made for this dispatch (built,
 * or copied for a retry or an error-queue move), nothing reads them after, and a copy per message
 * costs more than the rest of the wrapper (a new object shape for the receiver to read too). A
 * copied message drops the context it carried first, so the next hop continues from this send.
 */
function writeTraceContext(operation: TransportOperation, active: Context): void {
  const headers = operation.message.headers as Record<string, string>;
  if (
    headers.traceparent !== undefined ||
    headers.tracestate !== undefined ||
    headers.baggage !== undefined
  ) {
    for (const name of propagation.fields()) delete headers[name];
  }
  propagation.inject(active, headers, headerSetter);
}
