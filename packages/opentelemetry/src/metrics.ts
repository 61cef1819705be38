import {
  type Attributes,
  type Counter,
  createNoopMeter,
  type Histogram,
  type Meter,
} from '@opentelemetry/api';
import { Attr } from './attributes.js';

/** The conventions' boundaries for messaging durations, in seconds. */
const durationBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
/** Critical time and time in queue include waits of minutes (delayed retries, backlogs). */
const longDurationBuckets = [...durationBuckets, 30, 60, 300, 900, 3600];

/**
 * Counts for one attribute set, kept as plain numbers and reported when a reader collects
 * (observable counters): a synchronous counter's `add` costs the SDK a hash of the attributes per
 * message, an increment costs nothing.
 */
export class Tally {
  sent = 0;
  consumed = 0;
  handled = 0;
  immediateRetries = 0;
  delayedRetries = 0;
  movedToErrorQueue = 0;
  pendingRequests = 0;
  /** Reported once it was non-zero: a cumulative up-down counter back at 0 still says so. */
  requested = false;
  constructor(readonly attributes: Attributes) {}
}

/** Past this many attribute sets, tallies stop being kept apart (a bound, not a leak). */
const maxTallies = 10_000;

/** Every instrument, created once per instrumentation. Names: docs/observability.md. */
export class TidingsMetrics {
  readonly sendDuration: Histogram;
  readonly processDuration: Histogram;
  readonly criticalTime: Histogram;
  readonly queueTime: Histogram;
  readonly requestDuration: Histogram;
  readonly failed: Counter;
  private readonly tallies = new Map<string, Tally>();
  private readonly overflow = new Tally({ [Attr.MessagingSystem]: '_OTHER' });

  constructor(meter: Meter) {
    const seconds = (name: string, description: string, buckets = durationBuckets) =>
      meter.createHistogram(name, {
        description,
        unit: 's',
        advice: { explicitBucketBoundaries: buckets },
      });
    this.sendDuration = seconds(
      'messaging.client.operation.duration',
      'How long the transport took to take a dispatch (send operations).',
    );
    this.processDuration = seconds(
      'messaging.process.duration',
      'Duration of one attempt at handling a message, handlers and what they send included.',
    );
    this.criticalTime = seconds(
      'tidings.message.critical_time',
      'From the time a message was sent (tidings.time-sent) to the end of its successful handling.',
      longDurationBuckets,
    );
    this.queueTime = seconds(
      'tidings.message.queue_time',
      'From the time a message was sent (tidings.time-sent) until it was received.',
      longDurationBuckets,
    );
    this.requestDuration = seconds(
      'tidings.request.duration',
      'From a request being sent to its reply (or timeout, abort, failure).',
    );
    this.failed = meter.createCounter('tidings.messages.failed', {
      description:
        'Failed attempts at handling a message, by what followed (tidings.failure.next).',
      unit: '{attempt}',
    });
    const messages = (name: string, description: string) =>
      meter.createObservableCounter(name, { description, unit: '{message}' });
    const sent = messages(
      'messaging.client.sent.messages',
      'Messages the endpoint handed to the transport (sends, publishes, replies, retries, error-queue moves).',
    );
    const consumed = messages(
      'messaging.client.consumed.messages',
      'Messages delivered to the endpoint (each delivery counts, redeliveries too).',
    );
    const handled = messages('tidings.messages.handled', 'Messages handled successfully.');
    const moved = messages(
      'tidings.messages.moved_to_error_queue',
      'Messages moved to the error queue (or the broker dead-letter queue).',
    );
    const immediate = meter.createObservableCounter('tidings.retries.immediate', {
      description: 'Immediate retries.',
      unit: '{retry}',
    });
    const delayed = meter.createObservableCounter('tidings.retries.delayed', {
      description: 'Delayed retries scheduled.',
      unit: '{retry}',
    });
    const pending = meter.createObservableUpDownCounter('tidings.requests.pending', {
      description: 'Requests waiting for their reply.',
      unit: '{request}',
    });
    meter.addBatchObservableCallback(
      (result) => {
        for (const tally of [...this.tallies.values(), this.overflow]) {
          const a = tally.attributes;
          if (tally.sent > 0) result.observe(sent, tally.sent, a);
          if (tally.consumed > 0) result.observe(consumed, tally.consumed, a);
          if (tally.handled > 0) result.observe(handled, tally.handled, a);
          if (tally.movedToErrorQueue > 0) result.observe(moved, tally.movedToErrorQueue, a);
          if (tally.immediateRetries > 0) result.observe(immediate, tally.immediateRetries, a);
          if (tally.delayedRetries > 0) result.observe(delayed, tally.delayedRetries, a);
          if (tally.requested) result.observe(pending, tally.pendingRequests, a);
        }
      },
      [sent, consumed, handled, moved, immediate, delayed, pending],
    );
  }

  /** The tally of one attribute set; the attributes object is shared, never change it. */
  tally(
    system: string,
    operation: string,
    destination: string,
    messageType: string | undefined,
    errorType?: string,
  ): Tally {
    const key = `${operation}\u0000${destination}\u0000${messageType ?? ''}\u0000${errorType ?? ''}\u0000${system}`;
    let tally = this.tallies.get(key);
    if (tally === undefined) {
      if (this.tallies.size >= maxTallies) return this.overflow;
      // Keys in sorted order: the SDK sorts them to hash the set at every record.
      const attributes: Attributes = {};
      if (errorType !== undefined) attributes[Attr.ErrorType] = errorType;
      attributes[Attr.DestinationName] = destination;
      attributes[Attr.OperationName] = operation;
      attributes[Attr.MessagingSystem] = system;
      if (messageType !== undefined) attributes[Attr.MessageType] = messageType;
      tally = new Tally(attributes);
      this.tallies.set(key, tally);
    }
    return tally;
  }
}

/** The meter's instruments, or undefined when it is a no-op one (no SDK): then none is recorded. */
export function createMetrics(meter: Meter): TidingsMetrics | undefined {
  // The API's no-op meter, what `getMeter` gives when no SDK is registered.
  if (meter.constructor === createNoopMeter().constructor) return undefined;
  return new TidingsMetrics(meter);
}
