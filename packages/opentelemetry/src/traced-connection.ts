import {
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
 * The endpoint's connection, with every dispatch traced: a `send <destination>` PRODUCER span per
 * message, child of the active context, and that span's context in the message's headers.
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

interface SendRecord {
  readonly span: Span;
  readonly metricAttributes: ReturnType<EndpointTelemetry['attributesFor']>;
}

function dispatchTraced(
  inner: TransportEndpoint,
  telemetry: EndpointTelemetry,
  operations: readonly TransportOperation[],
): Promise<void> {
  const parent = context.active();
  const records: SendRecord[] = [];
  const traced: TransportOperation[] = [];
  for (const operation of operations) {
    const { headers } = operation.message;
    const destination =
      operation.destination.kind === 'queue'
        ? operation.destination.queue
        : operation.destination.messageType;
    const operationName = operation.destination.kind === 'publish' ? 'publish' : 'send';
    const messageType = headers[Headers.MessageType];
    const span = telemetry.tracer.startSpan(
      `${operationName} ${destination}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          [Attr.MessagingSystem]: telemetry.system,
          [Attr.OperationType]: 'send',
          [Attr.OperationName]: operationName,
          [Attr.DestinationName]: destination,
          [Attr.MessageId]: operation.message.messageId,
          ...optional(Attr.ConversationId, headers[Headers.ConversationId]),
          ...optional(Attr.MessageType, messageType),
          ...optional(Attr.Intent, headers[Headers.Intent]),
          ...(operation.delayMs !== undefined ? { [Attr.DelayMs]: operation.delayMs } : {}),
        },
      },
      parent,
    );
    records.push({
      span,
      metricAttributes: telemetry.attributesFor(operationName, destination, messageType),
    });
    traced.push(withTraceContext(operation, trace.setSpan(parent, span)));
  }
  const startedAt = performance.now();
  const ended = (error?: unknown) => {
    const seconds = (performance.now() - startedAt) / 1000;
    const type = error === undefined ? undefined : errorType(error);
    for (const { span, metricAttributes } of records) {
      const attributes =
        type === undefined ? metricAttributes : { ...metricAttributes, [Attr.ErrorType]: type };
      telemetry.metrics.sent.add(1, attributes);
      telemetry.metrics.sendDuration.record(seconds, attributes);
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
    dispatched = inner.dispatch(traced);
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

function optional(name: string, value: string | undefined) {
  return value === undefined ? {} : { [name]: value };
}

/**
 * The operation with the trace context the propagator writes (W3C `traceparent`, `tracestate`,
 * `baggage` by default). A copied message (a retry, an error-queue move) drops the context it
 * carried first, so the next hop continues from this send. Without a propagator: unchanged.
 */
function withTraceContext(
  operation: TransportOperation,
  active: ReturnType<typeof trace.setSpan>,
): TransportOperation {
  const carrier: Record<string, string> = {};
  propagation.inject(active, carrier, headerSetter);
  let any = false;
  for (const _ in carrier) {
    any = true;
    break;
  }
  if (!any) return operation;
  const headers: Record<string, string> = {};
  const old = operation.message.headers;
  const fields = propagation.fields();
  for (const name in old) {
    if (!fields.includes(name)) headers[name] = old[name] as string;
  }
  Object.assign(headers, carrier);
  return { ...operation, message: { ...operation.message, headers } };
}
