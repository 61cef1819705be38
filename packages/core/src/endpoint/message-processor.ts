import type { CallbackRegistry } from '../callbacks/callback-registry.js';
import type { EndpointDurableRequests } from '../durable-requests/durable-requests.js';
import { NoHandlerError } from '../errors.js';
import type {
  EndpointInstrumentation,
  MessageObserver,
} from '../instrumentation/instrumentation.js';
import type { MessageDefinition } from '../messages/define-message.js';
import { Headers } from '../messages/headers.js';
import { validatePayload } from '../messages/validate.js';
import type { EndpointOutbox } from '../persistence/outbox.js';
import { type IncomingMiddleware, runMiddleware } from '../pipeline/middleware.js';
import type {
  IncomingTransportMessage,
  MessageOutcome,
  TransportEndpoint,
} from '../transport/transport.js';
import { completeCallback } from './callback-completion.js';
import { dispatchAfterHandlers } from './dispatch-after-handlers.js';
import type { Handler } from './endpoint.js';
import type { ResolvedEndpointOptions } from './endpoint-options.js';
import { FailureHandling } from './failure-handling.js';
import { type ContextHost, MessageHandlerContext } from './handler-context.js';
import { type ParsedMessage, parseMessage } from './parsed-message.js';

export interface HandlerRegistration {
  readonly definition: MessageDefinition;
  readonly handlers: Handler<unknown>[];
}

export interface ProcessorCounters {
  handled: number;
  deadLettered: number;
  immediateRetries: number;
  delayedRetries: number;
  movedToErrorQueue: number;
  unmatchedReplies: number;
  undeliverableReplies: number;
  duplicates: number;
}

/** What the processor needs from its endpoint. */
export interface ProcessorHost extends ContextHost {
  readonly options: ResolvedEndpointOptions;
  readonly registry: CallbackRegistry;
  readonly handlers: ReadonlyMap<string, HandlerRegistration>;
  readonly incomingMiddleware: readonly IncomingMiddleware[];
  readonly counters: ProcessorCounters;
  readonly canDelay: boolean;
  readonly transportEndpoint: TransportEndpoint;
  /** Aborted when the stop deadline passes: stop working on messages, abandon them. */
  readonly shutdownSignal: AbortSignal;
  /** `stop()` was called: a failed attempt abandons its message instead of retrying it. */
  readonly stopRequested: boolean;
  /** With a persistence: each attempt runs in its transaction (docs/adr/0012-outbox-and-inbox.md). */
  readonly outbox: EndpointOutbox | undefined;
  /** Observes each message when the endpoint has an `instrumentation`. */
  readonly instrumentation: EndpointInstrumentation | undefined;
  /** Durable requests' replies, deadlines and outcomes (docs/adr/0015-durable-requests.md). */
  readonly durableRequests?: EndpointDurableRequests | undefined;
}

/**
 * Runs the handlers one after another from `from`. Returns nothing while they return no promise;
 * from the first one that does, a promise of the rest.
 */
function runHandlers(
  handlers: readonly Handler<unknown>[],
  from: number,
  payload: unknown,
  context: MessageHandlerContext,
): void | Promise<void> {
  for (let i = from; i < handlers.length; i++) {
    const result: unknown = (handlers[i] as Handler<unknown>)(payload, context);
    // Any thenable counts, as `await` would have it.
    if (typeof (result as PromiseLike<void> | undefined)?.then === 'function') {
      return Promise.resolve(result).then(() => runHandlers(handlers, i + 1, payload, context));
    }
  }
}

/**
 * Handles one received message end to end: headers, deserialization, callbacks, handlers,
 * recoverability. Returns how the transport should settle it; never throws.
 */
export class MessageProcessor {
  /** Each message's observer, while it is processed; only with an instrumentation. */
  private readonly observers = new WeakMap<IncomingTransportMessage, MessageObserver>();
  private readonly failures: FailureHandling;

  constructor(private readonly host: ProcessorHost) {
    this.failures = new FailureHandling(host, this.observers);
  }

  /**
   * Never throws or rejects. Synchronous when nothing on the way waits (no middleware, no schema,
   * handlers that return no promise, nothing to dispatch): each promise per message shows in GC.
   */
  process(raw: IncomingTransportMessage): MessageOutcome | Promise<MessageOutcome> {
    const instrumentation = this.host.instrumentation;
    if (instrumentation === undefined) return this.processUnobserved(raw);
    const observer = instrumentation.received(raw);
    this.observers.set(raw, observer);
    const outcome = observer.attempt(1, () => this.processUnobserved(raw));
    const settle = (settled: MessageOutcome) => {
      this.observers.delete(raw);
      try {
        observer.settled(settled);
      } catch {
        // Observing must never change how the message is settled.
      }
      return settled;
    };
    return outcome instanceof Promise ? outcome.then(settle) : settle(outcome);
  }

  private processUnobserved(
    raw: IncomingTransportMessage,
  ): MessageOutcome | Promise<MessageOutcome> {
    try {
      const outcome = this.processMessage(raw);
      return outcome instanceof Promise
        ? outcome.catch((error: unknown) => this.failures.unexpectedFailure(raw, error))
        : outcome;
    } catch (error) {
      return this.failures.unexpectedFailure(raw, error);
    }
  }

  private processMessage(raw: IncomingTransportMessage): MessageOutcome | Promise<MessageOutcome> {
    const parsed = parseMessage(raw, this.host.options.serializer);
    if (parsed instanceof Error) return this.failures.moveToError(raw, parsed);

    if (parsed.isReply || parsed.intent === undefined) {
      // A foreign sender may leave out the intent: a correlated reply is still recognised.
      const pending = this.host.registry.take(parsed.correlationId);
      if (pending !== undefined) {
        parsed.isReply = true;
        const completing = completeCallback(pending, parsed);
        if (completing === undefined) return this.toHandlers(parsed, true);
        return completing.then(() => this.toHandlers(parsed, true));
      }
    }
    const durable = this.host.durableRequests?.route(
      parsed,
      (registration, payload) => this.handleWithRecoverability(parsed, registration, payload, 1),
      () => this.toHandlers(parsed, false),
      (context) => this.unmatchedInline(parsed, context as MessageHandlerContext),
    );
    return durable ?? this.toHandlers(parsed, false);
  }

  /** After the callbacks: the message's handlers, or where it goes when it has none. */
  private toHandlers(
    parsed: ParsedMessage,
    callbackMatched: boolean,
  ): MessageOutcome | Promise<MessageOutcome> {
    const { raw } = parsed;
    const registration =
      parsed.messageType === undefined ? undefined : this.host.handlers.get(parsed.messageType);
    if (registration === undefined) {
      if (parsed.isReply) {
        if (callbackMatched) return 'complete';
        return this.unmatchedReply(parsed);
      }
      if (parsed.deserializationError !== undefined) {
        return this.failures.moveToError(raw, parsed.deserializationError);
      }
      return this.failures.moveToError(
        raw,
        new NoHandlerError(this.host.endpointName, parsed.messageType ?? '(none)'),
      );
    }
    if (parsed.deserializationError !== undefined) {
      return this.failures.moveToError(raw, parsed.deserializationError);
    }
    // Without a schema there is nothing to wait for: no promise, no extra turn per message.
    if (registration.definition.schema !== undefined) {
      return validatePayload(registration.definition, parsed.payload).then(
        (payload) => this.handleWithRecoverability(parsed, registration, payload, 1),
        (error: unknown) => this.failures.moveToError(raw, error),
      );
    }
    return this.handleWithRecoverability(parsed, registration, parsed.payload, 1);
  }

  /**
   * A reply to a durable request whose deadline took the record first, found in the reply's own
   * transaction: its handlers run there, or it is counted and discarded.
   */
  private async unmatchedInline(
    parsed: ParsedMessage,
    context: MessageHandlerContext,
  ): Promise<void> {
    const registration =
      parsed.messageType === undefined ? undefined : this.host.handlers.get(parsed.messageType);
    if (registration === undefined || parsed.deserializationError !== undefined) {
      this.host.counters.unmatchedReplies++;
      this.host.options.logger.warn(
        'Discarded a reply to a durable request that timed out meanwhile, which no handler takes',
        { messageId: parsed.messageId, correlationId: parsed.correlationId },
      );
      return;
    }
    const payload = await validatePayload(registration.definition, parsed.payload);
    await runHandlers(registration.handlers, 0, payload, context);
  }

  private async unmatchedReply(parsed: ParsedMessage): Promise<MessageOutcome> {
    const { logger, unmatchedReplies } = this.host.options;
    this.host.counters.unmatchedReplies++;
    const what =
      parsed.messageType !== undefined
        ? `'${parsed.messageType}'`
        : `return code ${parsed.returnCode}`;
    if (unmatchedReplies === 'error-queue') {
      return this.failures.moveToError(
        parsed.raw,
        new NoHandlerError(this.host.endpointName, parsed.messageType ?? 'return code'),
      );
    }
    logger.warn(
      `Discarded a reply (${what}) that no request waits for (timed out, aborted, already answered, or sent before a restart) and no handler takes`,
      { messageId: parsed.messageId, correlationId: parsed.correlationId },
    );
    return 'complete';
  }

  /**
   * One handling attempt, and the next ones the recoverability policy asks for. The attempt that
   * succeeds without waiting on anything returns its outcome synchronously.
   */
  private handleWithRecoverability(
    parsed: ParsedMessage,
    registration: HandlerRegistration,
    payload: unknown,
    attempt: number,
  ): MessageOutcome | Promise<MessageOutcome> {
    // Without an instrumentation, not even a lookup.
    const observer =
      this.host.instrumentation === undefined ? undefined : this.observers.get(parsed.raw);
    if (observer === undefined) return this.handleAttempt(parsed, registration, payload, attempt);
    return observer.attempt(attempt, () =>
      this.handleAttempt(parsed, registration, payload, attempt),
    );
  }

  private handleAttempt(
    parsed: ParsedMessage,
    registration: HandlerRegistration,
    payload: unknown,
    attempt: number,
  ): MessageOutcome | Promise<MessageOutcome> {
    const { raw } = parsed;
    const host = this.host;
    if (host.shutdownSignal.aborted) return 'abandon';
    const context = new MessageHandlerContext(
      host,
      parsed.messageId,
      parsed.correlationId,
      parsed.conversationId,
      registration.definition.name,
      raw.headers,
      raw.headers[Headers.ReplyTo],
      host.shutdownSignal,
    );
    const failed = (error: unknown) => {
      // What the attempt sends is discarded: a send made from now on is refused, not lost unseen.
      context.close();
      return this.afterFailure(parsed, registration, payload, attempt, error);
    };
    if (host.outbox !== undefined) {
      const invoke = () => this.invokeHandlers(registration, payload, context, parsed);
      return host.outbox.attempt(parsed.messageId, context, invoke, failed);
    }
    let handling: void | Promise<void>;
    try {
      handling = this.invokeHandlers(registration, payload, context, parsed);
    } catch (error) {
      return failed(error);
    }
    if (handling === undefined) return dispatchAfterHandlers(host, context, failed);
    return handling.then(() => dispatchAfterHandlers(host, context, failed), failed);
  }

  /** An attempt failed: the recoverability policy decides what comes next, maybe another one. */
  private async afterFailure(
    parsed: ParsedMessage,
    registration: HandlerRegistration,
    payload: unknown,
    attempt: number,
    error: unknown,
  ): Promise<MessageOutcome> {
    const name = registration.definition.name;
    const outcome = await this.failures.afterFailure(parsed, name, attempt, error);
    if (outcome !== undefined) return outcome;
    return this.handleWithRecoverability(parsed, registration, payload, attempt + 1);
  }

  private invokeHandlers(
    registration: HandlerRegistration,
    payload: unknown,
    context: MessageHandlerContext,
    parsed: ParsedMessage,
  ): void | Promise<void> {
    if (this.host.incomingMiddleware.length === 0) {
      return runHandlers(registration.handlers, 0, payload, context);
    }
    const incoming = {
      messageId: parsed.messageId,
      messageType: registration.definition.name,
      headers: parsed.raw.headers,
      payload,
      queue: parsed.raw.queue,
    };
    return runMiddleware(this.host.incomingMiddleware, incoming, async () => {
      await runHandlers(registration.handlers, 0, incoming.payload, context);
    });
  }
}
