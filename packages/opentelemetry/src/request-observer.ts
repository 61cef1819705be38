import { type Context, context, type Span, SpanStatusCode, trace } from '@opentelemetry/api';
import type { RequestObserver } from '@tidings/core';
import { Attr, errorType } from './attributes.js';
import type { EndpointTelemetry } from './endpoint-telemetry.js';
import type { Tally } from './metrics.js';

/**
 * A `request <destination>` CLIENT span from the request to its reply (or timeout, abort,
 * failure); the `send` span of the request message is its child, so the reply's handling joins
 * the requester's trace.
 */
export class TidingsRequestObserver implements RequestObserver {
  private readonly span: Span | undefined;
  private readonly active: Context | undefined;
  private readonly tally: Tally | undefined;
  private readonly startedAt = performance.now();
  private ended = false;

  constructor(
    private readonly telemetry: EndpointTelemetry,
    messageType: string,
    destination: string,
    messageId: string,
  ) {
    const tracer = telemetry.tracer;
    if (tracer !== undefined) {
      const parent = context.active();
      const start = telemetry.spanStart('request', destination, messageType);
      const span = tracer.startSpan(start.name, start.options, parent);
      if (span.isRecording()) span.setAttribute(Attr.MessageId, messageId);
      this.span = span;
      this.active = trace.setSpan(parent, this.span);
    }
    this.tally = telemetry.tally('request', destination, messageType);
    if (this.tally !== undefined) {
      this.tally.pendingRequests++;
      this.tally.requested = true;
    }
  }

  run<T>(fn: () => T): T {
    return this.active === undefined ? fn() : context.with(this.active, fn);
  }

  settled(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    const type = error === undefined ? undefined : errorType(error);
    const tally = this.tally;
    if (tally !== undefined) {
      tally.pendingRequests--;
      this.telemetry.metrics?.requestDuration.record(
        (performance.now() - this.startedAt) / 1000,
        type === undefined ? tally.attributes : { ...tally.attributes, [Attr.ErrorType]: type },
      );
    }
    const span = this.span;
    if (span === undefined) return;
    if (type !== undefined) {
      span.recordException(error instanceof Error ? error : { name: type, message: String(error) });
      span.setAttribute(Attr.ErrorType, type);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    span.end();
  }
}
