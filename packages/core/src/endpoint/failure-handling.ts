import { TidingsError } from '../errors.js';
import type { FailureNext, MessageObserver } from '../instrumentation/instrumentation.js';
import { Headers, headerCount, MAX_FAILURE_HEADER_LENGTH } from '../messages/headers.js';
import { failureHeaders, sliceWhole } from '../recoverability/failure-headers.js';
import { faultReplyIntent } from '../recoverability/fault-reply.js';
import { actionProblem, type RecoverabilityAction } from '../recoverability/recoverability.js';
import { isInstanceOf, readString } from '../thrown-value.js';
import type { IncomingTransportMessage, MessageOutcome } from '../transport/transport.js';
import { errorMessage } from '../util.js';
import type { ProcessorHost } from './message-processor.js';
import { messageSize } from './outgoing.js';
import type { ParsedMessage } from './parsed-message.js';

/** What failure handling needs from the endpoint. */
export type FailureHost = Pick<
  ProcessorHost,
  | 'options'
  | 'counters'
  | 'canDelay'
  | 'transportEndpoint'
  | 'shutdownSignal'
  | 'stopRequested'
  | 'instrumentation'
  | 'build'
>;

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
 * What happens to a message that failed: a retry, the error queue, a dead letter, or back to its
 * queue, each told to the message's observer. Settles only once that outcome is durable.
 */
export class FailureHandling {
  constructor(
    private readonly host: FailureHost,
    /** Each message's observer, while the processor works on it. */
    private readonly observers: WeakMap<IncomingTransportMessage, MessageObserver>,
  ) {}

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
   * Only a bug lands here; the message goes back to the queue rather than being lost, after a
   * pause so that a message which always hits the bug does not become a hot redelivery loop.
   */
  async unexpectedFailure(raw: IncomingTransportMessage, error: unknown): Promise<MessageOutcome> {
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

  /**
   * An attempt of the handlers of `messageType` failed: the recoverability policy decides what
   * comes next. Undefined means "try again now".
   */
  async afterFailure(
    parsed: ParsedMessage,
    messageType: string,
    attempt: number,
    error: unknown,
  ): Promise<MessageOutcome | undefined> {
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
    let action: RecoverabilityAction | undefined;
    let problem: string | undefined;
    try {
      action = host.options.recoverability.decide(
        {
          error,
          messageId: parsed.messageId,
          messageType,
          headers: raw.headers,
          immediateAttempts: attempt,
          delayedRetries,
        },
        host.canDelay,
      );
      const wrong = actionProblem(action);
      if (wrong !== undefined) problem = `returned ${wrong}`;
    } catch (policyError) {
      problem = `threw: ${errorMessage(policyError)}`;
    }
    if (problem !== undefined || action === undefined) {
      // A bug in the policy: retrying would meet it again, so the message goes where a person
      // looks, with the handler's error in its failure headers.
      host.options.logger.error(
        `The recoverability policy ${problem}; moving the message to the error queue`,
        { messageId: parsed.messageId, messageType: parsed.messageType, attempt },
      );
      return this.moveToError(raw, error);
    }
    return this.applyAction(action, parsed, error, delayedRetries, attempt);
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

  /**
   * What the failure headers may take so the copy stays under the transport's limit, with some
   * bytes spare for its own framing, which core cannot count.
   */
  private failureHeaderRoom(raw: IncomingTransportMessage): number {
    const limit = this.host.options.transport.capabilities.maxMessageSizeBytes;
    return limit - framingAllowance(limit) - messageSize(raw.headers, raw.body);
  }

  /** Copies the message with failure headers to the error queue; settles only once that is durable. */
  async moveToError(
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
