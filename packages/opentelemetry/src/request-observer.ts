import {
  type Attributes,
  type Context,
  context,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import type { RequestObserver } from '@tidings/core';
import { Attr, errorType } from './attributes.js';
import type { EndpointTelemetry } from './endpoint-telemetry.js';

/**
 * A `request <destination>` CLIENT span from the request to its reply (or timeout, abort,
 * failure); the `send` span of the request message is its child, so the reply's handling joins
 * the requester's trace.
 */
export class TidingsRequestObserver implements RequestObserver {
  private readonly span: Span;
  private readonly active: Context;
  private readonly metricAttributes: Attributes;
  private readonly startedAt = performance.now();
  private ended = false;

  constructor(
    private readonly telemetry: EndpointTelemetry,
    messageType: string,
    destination: string,
    messageId: string,
  ) {
    const parent = context.active();
    this.span = telemetry.tracer.startSpan(
      `request ${destination}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [Attr.MessagingSystem]: telemetry.system,
          [Attr.OperationName]: 'request',
          [Attr.DestinationName]: destination,
          [Attr.MessageId]: messageId,
          [Attr.MessageType]: messageType,
        },
      },
      parent,
    );
    this.active = trace.setSpan(parent, this.span);
    this.metricAttributes = telemetry.attributesFor('request', destination, messageType);
    telemetry.metrics.pendingRequests.add(1, this.metricAttributes);
  }

  run<T>(fn: () => T): T {
    return context.with(this.active, fn);
  }

  settled(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const metrics = this.telemetry.metrics;
    metrics.pendingRequests.add(-1, this.metricAttributes);
    let attributes = this.metricAttributes;
    if (error !== undefined) {
      const type = errorType(error);
      attributes = { ...attributes, [Attr.ErrorType]: type };
      this.span.recordException(
        error instanceof Error ? error : { name: type, message: String(error) },
      );
      this.span.setAttribute(Attr.ErrorType, type);
      this.span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    metrics.requestDuration.record((performance.now() - this.startedAt) / 1000, attributes);
    this.span.end();
  }
}
