import type { CallbackRegistry, PendingRequest } from '../callbacks/callback-registry.js';
import type { EndpointDurableRequests } from '../durable-requests/durable-requests.js';
import {
  DeserializationError,
  MalformedMessageError,
  NoHandlerError,
  ReplyMismatchError,
  TidingsError,
} from '../errors.js';
import type {
  EndpointInstrumentation,
  FailureNext,
  MessageObserver,
} from '../instrumentation/instrumentation.js';
import type { MessageDefinition } from '../messages/define-message.js';
import { Headers, headerCount, MAX_FAILURE_HEADER_LENGTH } from '../messages/headers.js';
import { validatePayload } from '../messages/validate.js';
import type { EndpointOutbox } from '../persistence/outbox.js';
import { type IncomingMiddleware, runMiddleware } from '../pipeline/middleware.js';
import { failureHeaders, sliceWhole } from '../recoverability/failure-headers.js';
import { faultReplyIntent, remoteFailure } from '../recoverability/fault-reply.js';
import type { RecoverabilityAction } from '../recoverability/recoverability.js';
import { isInstanceOf, readString } from '../thrown-value.js';
import type {
  IncomingTransportMessage,
  MessageOutcome,
  TransportEndpoint,
} from '../transport/transport.js';
import { errorMessage } from '../util.js';
import type { Handler } from './endpoint.js';
import type { ResolvedEndpointOptions } from './endpoint-options.js';
import { type ContextHost, MessageHandlerContext } from './handler-context.js';
import { messageSize } from './outgoing.js';

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

interface ParsedMessage {
  readonly raw: IncomingTransportMessage;
  readonly messageId: string;
  readonly messageType: string | undefined;
  readonly returnCode: number | undefined;
  readonly correlationId: string;
  readonly conversationId: string;
  readonly intent: string | undefined;
  isReply: boolean;
  payload: unknown;
  deserializationError: unknown;
}

/**
 * Left under a transport's size limit when failure headers are added to a message: its framing
 * and header encoding, which core cannot count (more than 1 KB on Service Bus's 256 KB).
 */
const framingAllowance = (limit: number) => Math.max(4096, Math.ceil(limit / 64));

/** Before a message that could not be dealt with goes back to its queue. */
const backoffAfterFailureMs = 1000;

/** A message no handler could ever read: its body or its headers are broken. */
function isUnreadable(error: unknown): boolean {
  if (!isInstanceOf(error, TidingsError)) return false;
  const code = readString(error, 'code');
  return code === 'TIDINGS_DESERIALIZATION' || code === 'TIDINGS_MALFORMED_MESSAGE';
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

  constructor(private readonly host: ProcessorHost) {}

  /** Tells the message's observer, if any, what follows a failure. */
  private observeFailure(raw: IncomingTransportMessage, error: unknown, next: FailureNext): void {
    if (this.host.instrumentation === undefined) return;
    try {
      this.observers.get(raw)?.failed(error, next);
    } catch {
      // Observing must never change what happens to a message.
    }
  }

  private get deadLettersUnreadable(): boolean {
    const { recoverability, transport } = this.host.options;
    return (
      recoverability.unreadableMessages === 'dead-letter' &&
      transport.capabilities.nativeDeadLetter === true
    );
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
        ? outcome.catch((error: unknown) => this.unexpectedFailure(raw, error))
        : outcome;
    } catch (error) {
      return this.unexpectedFailure(raw, error);
    }
  }

  /**
   * Only a bug lands here; the message goes back to the queue rather than being lost, after a
   * pause so that a message which always hits the bug does not become a hot redelivery loop.
   */
  private async unexpectedFailure(
    raw: IncomingTransportMessage,
    error: unknown,
  ): Promise<MessageOutcome> {
    this.host.options.logger.error(
      'Unexpected failure while processing a message; it will be received again',
      {
        messageId: raw.messageId,
        error: errorMessage(error),
      },
    );
    this.observeFailure(raw, error, 'abandon');
    await this.pauseUnlessStopping();
    return 'abandon';
  }

  private async pauseUnlessStopping(): Promise<void> {
    // Once stop() was called the message only goes back: pausing would just hold up the stop.
    if (!this.host.stopRequested && !this.host.shutdownSignal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, backoffAfterFailureMs));
    }
  }

  private processMessage(raw: IncomingTransportMessage): MessageOutcome | Promise<MessageOutcome> {
    const parsed = this.parse(raw);
    if (parsed instanceof Error) return this.moveToError(raw, parsed);

    if (parsed.isReply || parsed.intent === undefined) {
      // A foreign sender may leave out the intent: a correlated reply is still recognised.
      const pending = this.host.registry.take(parsed.correlationId);
      if (pending !== undefined) {
        parsed.isReply = true;
        return this.completeCallback(pending, parsed).then(() => this.toHandlers(parsed, true));
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
        return this.moveToError(raw, parsed.deserializationError);
      }
      return this.moveToError(
        raw,
        new NoHandlerError(this.host.endpointName, parsed.messageType ?? '(none)'),
      );
    }
    if (parsed.deserializationError !== undefined) {
      return this.moveToError(raw, parsed.deserializationError);
    }
    // Without a schema there is nothing to wait for: no promise, no extra turn per message.
    if (registration.definition.schema !== undefined) {
      return validatePayload(registration.definition, parsed.payload).then(
        (payload) => this.handleWithRecoverability(parsed, registration, payload, 1),
        (error: unknown) => this.moveToError(raw, error),
      );
    }
    return this.handleWithRecoverability(parsed, registration, parsed.payload, 1);
  }

  private parse(raw: IncomingTransportMessage): ParsedMessage | Error {
    if (raw.unreadableReason !== undefined) {
      return new MalformedMessageError(`Message ${raw.messageId}: ${raw.unreadableReason}`);
    }
    const headers = raw.headers;
    // Transports hand over strings; a value that is not one (a transport's bug, or a foreign
    // client's property it passed on) would break whatever reads it.
    for (const name in headers) {
      if (typeof headers[name] !== 'string') {
        return new MalformedMessageError(
          `Message ${raw.messageId}: header '${name.slice(0, 100)}' is not a string.`,
        );
      }
    }
    const messageType = headers[Headers.MessageType];
    const codeHeader = headers[Headers.ReturnCode];
    let returnCode: number | undefined;
    if (codeHeader !== undefined) {
      returnCode = Number(codeHeader);
      if (codeHeader.trim() === '' || !Number.isSafeInteger(returnCode)) {
        return new MalformedMessageError(
          `Header '${Headers.ReturnCode}' must be an integer, got ${JSON.stringify(codeHeader.slice(0, 50))}.`,
        );
      }
    }
    if (messageType === undefined && returnCode === undefined) {
      return new MalformedMessageError(
        `Message ${raw.messageId} has neither '${Headers.MessageType}' nor '${Headers.ReturnCode}': Tidings cannot tell what it is. See docs/wire-format.md.`,
      );
    }
    const messageId = headers[Headers.MessageId] ?? raw.messageId;
    const intent = headers[Headers.Intent];
    const parsed: ParsedMessage = {
      raw,
      messageId,
      messageType,
      returnCode,
      correlationId: headers[Headers.CorrelationId] ?? messageId,
      conversationId: headers[Headers.ConversationId] ?? messageId,
      intent,
      isReply: returnCode !== undefined || intent === 'reply' || intent === 'fault',
      payload: undefined,
      deserializationError: undefined,
    };
    if (messageType !== undefined) {
      const contentType = headers[Headers.ContentType];
      const serializer = this.host.options.serializer;
      if (contentType !== undefined && contentType !== serializer.contentType) {
        parsed.deserializationError = new DeserializationError(
          `Message '${messageType}' has content type '${contentType}'; this endpoint's serializer reads '${serializer.contentType}'.`,
        );
      } else {
        try {
          parsed.payload = serializer.deserialize(raw.body, messageType);
        } catch (error) {
          parsed.deserializationError = error;
        }
      }
    }
    return parsed;
  }

  /** Settles a pending request with the reply, or with a typed error if the reply does not fit. */
  private async completeCallback(pending: PendingRequest, parsed: ParsedMessage): Promise<void> {
    const expect = pending.expect;
    const headers = parsed.raw.headers;
    if (parsed.intent === 'fault') {
      pending.fail(remoteFailure(parsed));
      return;
    }
    if (parsed.returnCode !== undefined) {
      if (expect !== 'code' && expect !== 'any') {
        pending.fail(
          new ReplyMismatchError(`message '${expect.name}'`, `return code ${parsed.returnCode}`),
        );
        return;
      }
      await pending.complete({ kind: 'code', code: parsed.returnCode, headers });
      return;
    }
    const messageType = parsed.messageType as string;
    if (expect === 'code') {
      pending.fail(new ReplyMismatchError('a return code', `message '${messageType}'`));
      return;
    }
    if (parsed.deserializationError !== undefined) {
      pending.fail(parsed.deserializationError as Error);
      return;
    }
    let body = parsed.payload;
    if (expect !== 'any') {
      if (expect.name !== messageType) {
        pending.fail(
          new ReplyMismatchError(`message '${expect.name}'`, `message '${messageType}'`),
        );
        return;
      }
      if (expect.schema !== undefined) {
        try {
          body = await validatePayload(expect, body);
        } catch (error) {
          pending.fail(error as Error);
          return;
        }
      }
    }
    await pending.complete({ kind: 'message', messageType, body, headers });
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
      return this.moveToError(
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
    if (handling === undefined) return this.afterHandlers(context, failed);
    return handling.then(() => this.afterHandlers(context, failed), failed);
  }

  /**
   * Handlers succeeded: once what they started sending is built (asynchronous outgoing middleware,
   * a send not awaited), send it, then the message is handled.
   */
  private afterHandlers(
    context: MessageHandlerContext,
    failed: (error: unknown) => Promise<MessageOutcome>,
  ): MessageOutcome | Promise<MessageOutcome> {
    // Stopped past the deadline while handling: the outcome is not ours to make durable.
    if (this.host.shutdownSignal.aborted) return 'abandon';
    const built = context.whenBuilt();
    if (built === undefined) return this.dispatchOutgoing(context, failed);
    return built.then(() => this.dispatchOutgoing(context, failed), failed);
  }

  private dispatchOutgoing(
    context: MessageHandlerContext,
    failed: (error: unknown) => Promise<MessageOutcome>,
  ): MessageOutcome | Promise<MessageOutcome> {
    const host = this.host;
    // What goes out is final: a send made later (in a callback of one not awaited) is refused.
    context.close();
    // Or while waiting for what the handlers sent to be built.
    if (host.shutdownSignal.aborted) return 'abandon';
    const { outgoing, replies } = context;
    const handled = () => {
      host.counters.handled++;
      return 'complete' as const;
    };
    if (outgoing.length === 0 && replies.length === 0) return handled();
    const transport = host.transportEndpoint;
    let dispatched: Promise<unknown>;
    try {
      if (replies.length === 0) {
        dispatched = transport.dispatch(outgoing);
      } else if (outgoing.length === 0) {
        // Replies alone, as a request's handler sends: one dispatch, as ever.
        return transport
          .dispatch(replies)
          .then(handled, (error: unknown) =>
            this.undeliverableReplies(error, context) ? handled() : failed(error),
          );
      } else {
        // Replies apart from the rest, at the same time: a batch that fails on one reply cannot
        // say which messages it sent, and a reply nobody can receive must not hold back the rest.
        const sent = transport.dispatch(outgoing);
        let replied: Promise<void>;
        try {
          replied = transport.dispatch(replies);
        } catch (error) {
          // Still through Promise.all: `sent` must not be left to reject unhandled.
          replied = Promise.reject(error);
        }
        dispatched = Promise.all([
          sent,
          replied.catch((error: unknown) => {
            if (!this.undeliverableReplies(error, context)) throw error;
          }),
        ]);
      }
    } catch (error) {
      return failed(error);
    }
    return dispatched.then(handled, failed);
  }

  /**
   * True, after a warning, when the replies failed because their queue is gone: the requester
   * stopped and its instance queue expired, or it was deleted. Nobody can receive them any more,
   * and failing the attempt would run the handlers again and end a message that was handled in
   * the error queue. A send to a missing queue stays a failure: that is a route to fix.
   */
  private undeliverableReplies(error: unknown, context: MessageHandlerContext): boolean {
    if (readString(error, 'code') !== 'TIDINGS_DESTINATION_NOT_FOUND') return false;
    this.host.counters.undeliverableReplies += context.replies.length;
    this.host.options.logger.warn(
      `Dropped a reply to '${context.replyTo}': that queue no longer exists, so nobody can receive it (the requester stopped and its queue expired, or it was deleted)`,
      { messageId: context.messageId, correlationId: context.correlationId },
    );
    return true;
  }

  /** An attempt failed: the recoverability policy decides what comes next. */
  private async afterFailure(
    parsed: ParsedMessage,
    registration: HandlerRegistration,
    payload: unknown,
    attempt: number,
    error: unknown,
  ): Promise<MessageOutcome> {
    const { raw } = parsed;
    const host = this.host;
    // Stopped past the deadline while handling: the message is being abandoned (it comes again),
    // so no retry is scheduled and no copy goes to the error queue.
    if (host.shutdownSignal.aborted) return 'abandon';
    // Stopping: the failure may well be the stop's own doing (a request rejected with
    // EndpointStoppedError, a connection being closed), which no retry here can tell apart or fix.
    // The message goes back as it is, to be handled again by this endpoint or another instance.
    if (host.stopRequested) {
      host.options.logger.info(
        `Handler failed while the endpoint is stopping; the message will be received again: ${errorMessage(error)}`,
        { messageId: parsed.messageId, messageType: parsed.messageType, attempt },
      );
      this.observeFailure(raw, error, 'abandon');
      return 'abandon';
    }
    const delayedRetries = headerCount(raw.headers, Headers.DelayedRetries);
    const action = host.options.recoverability.decide(
      {
        error,
        messageId: parsed.messageId,
        messageType: registration.definition.name,
        headers: raw.headers,
        immediateAttempts: attempt,
        delayedRetries,
      },
      host.canDelay,
    );
    const outcome = await this.applyAction(action, parsed, error, delayedRetries, attempt);
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

  /** Carries out a recoverability action; undefined means "try again now". */
  private async applyAction(
    action: RecoverabilityAction,
    parsed: ParsedMessage,
    error: unknown,
    delayedRetries: number,
    attempt: number,
  ): Promise<MessageOutcome | undefined> {
    const host = this.host;
    const { logger } = host.options;
    const fields = { messageId: parsed.messageId, messageType: parsed.messageType, attempt };
    switch (action.kind) {
      case 'immediate-retry':
        host.counters.immediateRetries++;
        this.observeFailure(parsed.raw, error, 'immediate-retry');
        logger.debug(`Handler failed, retrying at once: ${errorMessage(error)}`, fields);
        return undefined;
      case 'delayed-retry': {
        if (!host.canDelay) {
          logger.warn(
            'The recoverability policy asked for a delayed retry, but the transport cannot delay; moving to the error queue',
            fields,
          );
          return this.moveToError(parsed.raw, error);
        }
        try {
          await host.transportEndpoint.dispatch([
            {
              message: {
                messageId: parsed.raw.messageId,
                headers: {
                  ...parsed.raw.headers,
                  [Headers.DelayedRetries]: String(delayedRetries + 1),
                },
                body: parsed.raw.body,
              },
              destination: { kind: 'queue', queue: parsed.raw.queue },
              delayMs: action.delayMs,
            },
          ]);
        } catch (dispatchError) {
          logger.error('Could not schedule a delayed retry; the message will be received again', {
            ...fields,
            error: errorMessage(dispatchError),
          });
          this.observeFailure(parsed.raw, error, 'abandon');
          return 'abandon';
        }
        host.counters.delayedRetries++;
        this.observeFailure(parsed.raw, error, 'delayed-retry');
        logger.warn(
          `Handler failed; delayed retry ${delayedRetries + 1} in ${action.delayMs} ms: ${errorMessage(error)}`,
          fields,
        );
        return 'complete';
      }
      case 'move-to-error':
        return this.moveToError(parsed.raw, error, action.errorQueue);
      case 'discard':
        this.observeFailure(parsed.raw, error, 'discard');
        logger.warn(`Handler failed; message discarded by policy: ${action.reason}`, fields);
        return 'complete';
    }
  }

  /** Copies the message with failure headers to the error queue; settles only once that is durable. */
  /**
   * What the failure headers may take so the copy stays under the transport's limit, with some
   * bytes spare for its own framing, which core cannot count.
   */
  private failureHeaderRoom(raw: IncomingTransportMessage): number {
    const limit = this.host.options.transport.capabilities.maxMessageSizeBytes;
    return limit - framingAllowance(limit) - messageSize(raw.headers, raw.body);
  }

  private async moveToError(
    raw: IncomingTransportMessage,
    error: unknown,
    errorQueue = this.host.options.recoverability.errorQueue,
  ): Promise<MessageOutcome> {
    const { logger } = this.host.options;
    if (this.deadLettersUnreadable && isUnreadable(error)) {
      this.host.counters.deadLettered++;
      const description = sliceWhole(errorMessage(error), MAX_FAILURE_HEADER_LENGTH);
      logger.error(`Dead-lettered a message that cannot be read: ${description}`, {
        messageId: raw.messageId,
        queue: raw.queue,
      });
      const reason = readString(error, 'code') ?? 'TIDINGS_MALFORMED_MESSAGE';
      this.observeFailure(raw, error, 'dead-letter');
      await this.sendFaultReply(raw, error);
      return { kind: 'dead-letter', reason, description };
    }
    try {
      await this.host.transportEndpoint.dispatch([
        {
          message: {
            messageId: raw.messageId,
            headers: {
              ...raw.headers,
              ...failureHeaders(error, raw.queue, this.failureHeaderRoom(raw)),
            },
            body: raw.body,
          },
          destination: { kind: 'queue', queue: errorQueue },
          // As it came: a header that was what was wrong stays as evidence (issue #17).
          copyOf: raw,
        },
      ]);
    } catch (dispatchError) {
      logger.error(`Could not move a message to '${errorQueue}'; it will be received again`, {
        messageId: raw.messageId,
        error: errorMessage(dispatchError),
      });
      this.observeFailure(raw, error, 'abandon');
      // Pause so a broken error queue does not become a hot redelivery loop.
      await this.pauseUnlessStopping();
      return 'abandon';
    }
    this.host.counters.movedToErrorQueue++;
    this.observeFailure(raw, error, 'error-queue');
    logger.error(`Moved a message to the error queue '${errorQueue}': ${errorMessage(error)}`, {
      messageId: raw.messageId,
      messageType: raw.headers[Headers.MessageType],
      queue: raw.queue,
    });
    await this.sendFaultReply(raw, error);
    return 'complete';
  }

  /**
   * Tells a waiting requester that its message failed for good, so it need not wait out its
   * timeout. Best effort: the message is already in the error queue, and a requester that does not
   * hear of it times out as before.
   */
  private async sendFaultReply(raw: IncomingTransportMessage, error: unknown): Promise<void> {
    const intent = faultReplyIntent(raw, error, this.host.options.faultReplies);
    if (intent === undefined) return;
    try {
      const operation = await this.host.build(intent);
      if (operation !== undefined) await this.host.transportEndpoint.dispatch([operation]);
    } catch (faultError) {
      this.host.options.logger.warn('Could not send a fault reply; the requester will time out', {
        messageId: raw.messageId,
        error: errorMessage(faultError),
      });
    }
  }
}
