import {
  type Attributes,
  type Context,
  context,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import {
  type FailureNext,
  Headers,
  type IncomingTransportMessage,
  type MessageObserver,
  type MessageOutcome,
} from '@tidings/core';
import { Attr, errorType } from './attributes.js';
import type { EndpointTelemetry } from './endpoint-telemetry.js';
import { headerGetter } from './header-carrier.js';

/** Milliseconds since the epoch of a `tidings.time-sent` value; undefined when unreadable. */
function sentAt(headers: Readonly<Record<string, string>>): number | undefined {
  const text = headers[Headers.TimeSent];
  if (text === undefined) return undefined;
  const time = Date.parse(text);
  return Number.isNaN(time) ? undefined : time;
}

function hasValidSpan(extracted: Context): boolean {
  const spanContext = trace.getSpanContext(extracted);
  return spanContext !== undefined && isSpanContextValid(spanContext);
}

/**
 * Follows one delivery: a `process <queue>` CONSUMER span per attempt, each a child of the
 * sender's context taken from the headers (a new trace when there is none, or it is malformed).
 */
export class ProcessObserver implements MessageObserver {
  private readonly parent: Context;
  private readonly metricAttributes: Attributes;
  private span: Span | undefined;
  private active: Context = ROOT_CONTEXT;
  private attemptNumber = 0;
  private attemptStartedAt = 0;
  private attemptError: string | undefined;
  private lastNext: FailureNext | undefined;

  constructor(
    private readonly telemetry: EndpointTelemetry,
    private readonly message: IncomingTransportMessage,
  ) {
    const { headers } = message;
    // From the root: whatever context the transport's callback happens to run in is not ours.
    this.parent = propagation.extract(ROOT_CONTEXT, headers, headerGetter);
    if (headers.traceparent !== undefined && !hasValidSpan(this.parent)) {
      telemetry.logger.debug(
        'Ignored a malformed traceparent header; the message starts a new trace',
        { messageId: message.messageId },
      );
    }
    this.metricAttributes = telemetry.attributesFor(
      'process',
      message.queue,
      headers[Headers.MessageType],
    );
    telemetry.metrics.consumed.add(1, this.metricAttributes);
    const sent = sentAt(headers);
    if (sent !== undefined) {
      telemetry.metrics.queueTime.record(
        Math.max(0, Date.now() - sent) / 1000,
        this.metricAttributes,
      );
    }
  }

  attempt<T>(attempt: number, run: () => T): T {
    if (attempt !== this.attemptNumber || this.span === undefined) this.startAttempt(attempt);
    return context.with(this.active, run);
  }

  failed(error: unknown, next: FailureNext): void {
    const span = this.span ?? this.startAttempt(Math.max(1, this.attemptNumber));
    const type = errorType(error);
    this.attemptError = type;
    this.lastNext = next;
    if (span.isRecording()) {
      span.recordException(error instanceof Error ? error : { name: type, message: String(error) });
      span.setAttribute(Attr.ErrorType, type);
      span.setAttribute(Attr.FailureNext, next);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    const metrics = this.telemetry.metrics;
    metrics.failed.add(1, {
      ...this.metricAttributes,
      [Attr.ErrorType]: type,
      [Attr.FailureNext]: next,
    });
    if (next === 'immediate-retry') metrics.immediateRetries.add(1, this.metricAttributes);
    else if (next === 'delayed-retry') metrics.delayedRetries.add(1, this.metricAttributes);
    else if (next === 'error-queue' || next === 'dead-letter') {
      metrics.movedToErrorQueue.add(1, this.metricAttributes);
    }
  }

  settled(outcome: MessageOutcome): void {
    const kind = typeof outcome === 'string' ? outcome : outcome.kind;
    const span = this.span;
    if (span?.isRecording()) span.setAttribute(Attr.Outcome, kind);
    const handled = kind === 'complete' && this.lastNext === undefined;
    this.endAttempt();
    if (!handled) return;
    const metrics = this.telemetry.metrics;
    metrics.handled.add(1, this.metricAttributes);
    const sent = sentAt(this.message.headers);
    if (sent !== undefined) {
      metrics.criticalTime.record(Math.max(0, Date.now() - sent) / 1000, this.metricAttributes);
    }
  }

  private startAttempt(attempt: number): Span {
    this.endAttempt();
    const { headers, queue } = this.message;
    const telemetry = this.telemetry;
    const attributes: Attributes = {
      [Attr.MessagingSystem]: telemetry.system,
      [Attr.OperationType]: 'process',
      [Attr.OperationName]: 'process',
      [Attr.DestinationName]: queue,
      [Attr.MessageId]: headers[Headers.MessageId] ?? this.message.messageId,
      [Attr.Attempt]: attempt,
    };
    const conversationId = headers[Headers.ConversationId];
    if (conversationId !== undefined) attributes[Attr.ConversationId] = conversationId;
    const messageType = headers[Headers.MessageType];
    if (messageType !== undefined) attributes[Attr.MessageType] = messageType;
    const intent = headers[Headers.Intent];
    if (intent !== undefined) attributes[Attr.Intent] = intent;
    const delayed = headers[Headers.DelayedRetries];
    if (delayed !== undefined) attributes[Attr.DelayedRetries] = Number(delayed) || 0;
    const span = telemetry.tracer.startSpan(
      `process ${queue}`,
      { kind: SpanKind.CONSUMER, attributes },
      this.parent,
    );
    this.span = span;
    this.active = trace.setSpan(this.parent, span);
    this.attemptNumber = attempt;
    this.attemptStartedAt = performance.now();
    this.attemptError = undefined;
    // A failure recorded for an earlier attempt is followed by this one.
    this.lastNext = undefined;
    return span;
  }

  private endAttempt(): void {
    const span = this.span;
    if (span === undefined) return;
    this.span = undefined;
    const seconds = (performance.now() - this.attemptStartedAt) / 1000;
    const type = this.attemptError;
    this.telemetry.metrics.processDuration.record(
      seconds,
      type === undefined
        ? this.metricAttributes
        : { ...this.metricAttributes, [Attr.ErrorType]: type },
    );
    span.end();
  }
}
