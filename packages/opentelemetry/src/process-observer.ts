import {
  type Context,
  context,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { type FailureNext, Headers, type MessageObserver } from '@tidings/core';
import type { IncomingTransportMessage, MessageOutcome } from '@tidings/core/transport';
import { Attr, errorType } from './attributes.js';
import type { EndpointTelemetry } from './endpoint-telemetry.js';
import type { Tally } from './metrics.js';
import { timeSent } from './time-sent.js';

/**
 * Follows one delivery: a `process <queue>` CONSUMER span per attempt, each a child of the
 * sender's context taken from the headers (a new trace when there is none, or it is malformed),
 * and the delivery's metrics.
 */
export class ProcessObserver implements MessageObserver {
  private readonly parent: Context = ROOT_CONTEXT;
  private readonly tally: Tally | undefined;
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
    if (telemetry.tracer !== undefined) {
      this.parent = telemetry.traceContext.extract(headers, message.messageId);
    }
    this.tally = telemetry.tally('process', message.queue, headers[Headers.MessageType]);
    if (this.tally !== undefined) {
      this.tally.consumed++;
      const sent = timeSent(headers);
      if (sent !== undefined) {
        telemetry.metrics?.queueTime.record(
          Math.max(0, Date.now() - sent) / 1000,
          this.tally.attributes,
        );
      }
    }
  }

  attempt<T>(attempt: number, run: () => T): T {
    if (attempt !== this.attemptNumber) this.startAttempt(attempt);
    // Core enters the first attempt twice (around the message, then around its handlers): a
    // context already active need not be entered again.
    if (this.span === undefined || context.active() === this.active) return run();
    return context.with(this.active, run);
  }

  failed(error: unknown, next: FailureNext): void {
    if (this.attemptNumber === 0) this.startAttempt(1);
    const type = errorType(error);
    this.attemptError = type;
    this.lastNext = next;
    const span = this.span;
    if (span?.isRecording()) {
      span.recordException(error instanceof Error ? error : { name: type, message: String(error) });
      span.setAttribute(Attr.ErrorType, type);
      span.setAttribute(Attr.FailureNext, next);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    const tally = this.tally;
    if (tally === undefined) return;
    this.telemetry.metrics?.failed.add(1, {
      ...tally.attributes,
      [Attr.ErrorType]: type,
      [Attr.FailureNext]: next,
    });
    if (next === 'immediate-retry') tally.immediateRetries++;
    else if (next === 'delayed-retry') tally.delayedRetries++;
    else if (next === 'error-queue' || next === 'dead-letter') tally.movedToErrorQueue++;
  }

  settled(outcome: MessageOutcome): void {
    const kind = typeof outcome === 'string' ? outcome : outcome.kind;
    if (this.span?.isRecording()) this.span.setAttribute(Attr.Outcome, kind);
    const handled = kind === 'complete' && this.lastNext === undefined;
    this.endAttempt();
    const tally = this.tally;
    if (!handled || tally === undefined) return;
    tally.handled++;
    const sent = timeSent(this.message.headers);
    if (sent !== undefined) {
      this.telemetry.metrics?.criticalTime.record(
        Math.max(0, Date.now() - sent) / 1000,
        tally.attributes,
      );
    }
  }

  private startAttempt(attempt: number): void {
    this.endAttempt();
    this.attemptNumber = attempt;
    // Timed for the processing duration only: without metrics, no clock read.
    this.attemptStartedAt = this.tally === undefined ? 0 : performance.now();
    this.attemptError = undefined;
    // A failure recorded for an earlier attempt is followed by this one.
    this.lastNext = undefined;
    const tracer = this.telemetry.tracer;
    if (tracer === undefined) return;
    const { headers, queue } = this.message;
    const start = this.telemetry.spanStart('process', queue, headers[Headers.MessageType]);
    const span = tracer.startSpan(start.name, start.options, this.parent);
    if (span.isRecording()) {
      span.setAttribute(Attr.MessageId, headers[Headers.MessageId] ?? this.message.messageId);
      span.setAttribute(Attr.Attempt, attempt);
      const conversationId = headers[Headers.ConversationId];
      if (conversationId !== undefined) span.setAttribute(Attr.ConversationId, conversationId);
      const intent = headers[Headers.Intent];
      if (intent !== undefined) span.setAttribute(Attr.Intent, intent);
      const delayed = headers[Headers.DelayedRetries];
      if (delayed !== undefined) span.setAttribute(Attr.DelayedRetries, Number(delayed) || 0);
    }
    this.span = span;
    this.active = trace.setSpan(this.parent, span);
  }

  private endAttempt(): void {
    if (this.attemptNumber === 0) return;
    const tally = this.tally;
    if (tally !== undefined && this.attemptStartedAt > 0) {
      const seconds = (performance.now() - this.attemptStartedAt) / 1000;
      const type = this.attemptError;
      this.telemetry.metrics?.processDuration.record(
        seconds,
        type === undefined ? tally.attributes : { ...tally.attributes, [Attr.ErrorType]: type },
      );
    }
    this.attemptStartedAt = 0;
    this.span?.end();
    this.span = undefined;
  }
}
