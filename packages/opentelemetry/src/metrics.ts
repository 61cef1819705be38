import type { Counter, Histogram, Meter, UpDownCounter } from '@opentelemetry/api';

/** The conventions' boundaries for messaging durations, in seconds. */
const durationBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
/** Critical time and time in queue include waits of minutes (delayed retries, backlogs). */
const longDurationBuckets = [...durationBuckets, 30, 60, 300, 900, 3600];

/** Every instrument, created once per instrumentation. Names: docs/operations.md. */
export interface TidingsMetrics {
  readonly sent: Counter;
  readonly sendDuration: Histogram;
  readonly consumed: Counter;
  readonly processDuration: Histogram;
  readonly handled: Counter;
  readonly failed: Counter;
  readonly immediateRetries: Counter;
  readonly delayedRetries: Counter;
  readonly movedToErrorQueue: Counter;
  readonly criticalTime: Histogram;
  readonly queueTime: Histogram;
  readonly pendingRequests: UpDownCounter;
  readonly requestDuration: Histogram;
}

export function createMetrics(meter: Meter): TidingsMetrics {
  const seconds = (name: string, description: string, buckets = durationBuckets) =>
    meter.createHistogram(name, {
      description,
      unit: 's',
      advice: { explicitBucketBoundaries: buckets },
    });
  const messages = (name: string, description: string) =>
    meter.createCounter(name, { description, unit: '{message}' });
  return {
    sent: messages(
      'messaging.client.sent.messages',
      'Messages the endpoint handed to the transport (sends, publishes, replies, retries, error-queue moves).',
    ),
    sendDuration: seconds(
      'messaging.client.operation.duration',
      'How long the transport took to take a dispatch (send operations).',
    ),
    consumed: messages(
      'messaging.client.consumed.messages',
      'Messages delivered to the endpoint (each delivery counts, redeliveries too).',
    ),
    processDuration: seconds(
      'messaging.process.duration',
      'Duration of one attempt at handling a message, handlers and what they send included.',
    ),
    handled: messages('tidings.messages.handled', 'Messages handled successfully.'),
    failed: meter.createCounter('tidings.messages.failed', {
      description:
        'Failed attempts at handling a message, by what followed (tidings.failure.next).',
      unit: '{attempt}',
    }),
    immediateRetries: meter.createCounter('tidings.retries.immediate', {
      description: 'Immediate retries.',
      unit: '{retry}',
    }),
    delayedRetries: meter.createCounter('tidings.retries.delayed', {
      description: 'Delayed retries scheduled.',
      unit: '{retry}',
    }),
    movedToErrorQueue: messages(
      'tidings.messages.moved_to_error_queue',
      'Messages moved to the error queue (or the broker dead-letter queue).',
    ),
    criticalTime: seconds(
      'tidings.message.critical_time',
      'From the time a message was sent (tidings.time-sent) to the end of its successful handling.',
      longDurationBuckets,
    ),
    queueTime: seconds(
      'tidings.message.queue_time',
      'From the time a message was sent (tidings.time-sent) until it was received.',
      longDurationBuckets,
    ),
    pendingRequests: meter.createUpDownCounter('tidings.requests.pending', {
      description: 'Requests waiting for their reply.',
      unit: '{request}',
    }),
    requestDuration: seconds(
      'tidings.request.duration',
      'From a request being sent to its reply (or timeout, abort, failure).',
    ),
  };
}
