import type { HandlerContext } from '../endpoint/endpoint.js';
import type { HandlerRegistration } from '../endpoint/message-processor.js';
import type { OutgoingIntent } from '../endpoint/outgoing.js';
import { ReplyMismatchError } from '../errors.js';
import type { MessageDefinition } from '../messages/define-message.js';
import { validatePayload } from '../messages/validate.js';
import type { DurableRequestRecord, DurableRequestStore } from '../persistence/persistence.js';
import { storageSession } from '../persistence/storage-session.js';
import { remoteFailure } from '../recoverability/fault-reply.js';
import { readString, thrownTypeName } from '../thrown-value.js';
import type { IncomingTransportMessage, MessageOutcome } from '../transport/transport.js';
import { errorMessage } from '../util.js';
import { type ContinuationRegistry, readState } from './continuation-registry.js';
import { type DurableAwaits, settleWaiter } from './durable-awaits.js';
import {
  ContinuationDone,
  type ContinuationOutcome,
  DurableRequestTimeout,
} from './durable-messages.js';
import type { DurableRequestsHost } from './durable-requests.js';

/** A received message as the processor parsed it: what durable requests read of it. */
export interface ParsedForDurable {
  readonly raw: IncomingTransportMessage;
  readonly messageId: string;
  readonly messageType: string | undefined;
  readonly returnCode: number | undefined;
  readonly correlationId: string;
  readonly intent: string | undefined;
  readonly isReply: boolean;
  readonly payload: unknown;
  readonly deserializationError: unknown;
}

/** The processor runs a registration made here (a reply's, a deadline's) with recoverability. */
type HandleAttempt = (
  registration: HandlerRegistration,
  payload: unknown,
) => MessageOutcome | Promise<MessageOutcome>;

/** The last handling attempt of a durable reply or timeout: what it took and how it ended. */
type Attempt =
  | {
      readonly ok: true;
      readonly record: DurableRequestRecord;
      readonly outcome: ContinuationOutcome;
      readonly error?: Error;
    }
  | { readonly ok: false; readonly record: DurableRequestRecord; readonly error: unknown }
  | undefined;

/**
 * Runs a durable request's continuation, once, for the reply or the deadline that takes its
 * record, then tells the `await` of this process or the instance that sent the request.
 */
export class ContinuationRunner {
  constructor(
    private readonly host: DurableRequestsHost,
    private readonly continuations: ContinuationRegistry,
    private readonly awaits: DurableAwaits,
  ) {}

  /**
   * The processor's hook, for a message no in-memory callback took: a durable request's reply,
   * deadline or outcome. Undefined: not one, the message goes to its handlers as ever.
   */
  route(
    parsed: ParsedForDurable,
    handle: HandleAttempt,
    fallback: () => MessageOutcome | Promise<MessageOutcome>,
    unmatched: (context: HandlerContext) => void | Promise<void>,
  ): MessageOutcome | Promise<MessageOutcome> | undefined {
    if (parsed.messageType === ContinuationDone.name && parsed.isReply) {
      this.awaits.told(parsed.correlationId, parsed.payload);
      return 'complete';
    }
    if (this.continuations.size === 0) return undefined;
    if (parsed.messageType === DurableRequestTimeout.name && !parsed.isReply) {
      return this.handleTimeout(parsed, handle);
    }
    if (!parsed.isReply) return undefined;
    // A request this process awaits has (or had) a record: no read needed. If the deadline took
    // it meanwhile, the reply's transaction finds nothing and treats it as unmatched.
    if (this.awaits.has(parsed.correlationId)) return this.handleReply(parsed, handle, unmatched);
    const store = this.host.durableRequestStore as DurableRequestStore;
    // Only replies pay this read: a reply to a durable request has a record until it is handled.
    return store.find(parsed.correlationId).then((record) => {
      if (record === undefined) return fallback();
      return this.handleReply(parsed, handle, unmatched);
    });
  }

  private handleReply(
    parsed: ParsedForDurable,
    handle: HandleAttempt,
    unmatched: (context: HandlerContext) => void | Promise<void>,
  ): Promise<MessageOutcome> {
    const definition = { name: parsed.messageType ?? 'tidings.ReturnCode', schema: undefined };
    return this.runAndSettle(definition, parsed, handle, async (context, report) => {
      const store = this.host.durableRequestStore as DurableRequestStore;
      const record = await store.take(storageSession(context), parsed.correlationId);
      // The deadline took it between the read and this transaction: an unmatched reply,
      // handled (or counted) in this very transaction.
      if (record === undefined) return unmatched(context);
      const continuation = this.continuations.named(record.continuation);
      try {
        const state = await readState(record, continuation);
        const reply = await this.readReply(parsed, continuation.reply);
        if (reply.ok) {
          await continuation.onReply(reply.value as never, state, context);
          report({ ok: true, record, outcome: { kind: 'reply', value: reply.value } });
        } else {
          if (continuation.onFailure === undefined) throw reply.error;
          await continuation.onFailure(reply.error, state, context);
          report({
            ok: true,
            record,
            outcome: {
              kind: 'failed',
              exceptionType: thrownTypeName(reply.error),
              ...codeOf(reply.error),
            },
            error: reply.error,
          });
        }
      } catch (error) {
        report({ ok: false, record, error });
        throw error;
      }
    });
  }

  private handleTimeout(parsed: ParsedForDurable, handle: HandleAttempt): Promise<MessageOutcome> {
    const definition = DurableRequestTimeout as MessageDefinition;
    return this.runAndSettle(definition, parsed, handle, async (context, report) => {
      const store = this.host.durableRequestStore as DurableRequestStore;
      // The correlation id header, not the body: the body is only for people reading queues.
      const record = await store.take(storageSession(context), parsed.correlationId);
      if (record === undefined) return; // the reply came first
      const continuation = this.continuations.named(record.continuation);
      try {
        const state = await readState(record, continuation);
        if (continuation.onTimeout !== undefined) await continuation.onTimeout(state, context);
        else {
          this.host.options.logger.info(
            'A durable request timed out; its continuation has no onTimeout',
            { continuation: record.continuation, correlationId: record.correlationId },
          );
        }
        report({ ok: true, record, outcome: { kind: 'timeout' } });
      } catch (error) {
        report({ ok: false, record, error });
        throw error;
      }
    });
  }

  /**
   * Runs `work` as the message's one handler, with recoverability; once the message completes,
   * settles what its last attempt reported (each attempt starts with nothing reported).
   */
  private runAndSettle(
    definition: MessageDefinition,
    parsed: ParsedForDurable,
    handle: HandleAttempt,
    work: (context: HandlerContext, report: (attempt: Attempt) => void) => Promise<void>,
  ): Promise<MessageOutcome> {
    let attempt: Attempt;
    const report = (reported: Attempt) => {
      attempt = reported;
    };
    const registration: HandlerRegistration = {
      definition,
      handlers: [
        (_payload, context) => {
          attempt = undefined;
          return work(context, report);
        },
      ],
    };
    return Promise.resolve(handle(registration, parsed.payload)).then((outcome) => {
      if (outcome === 'complete') this.settle(attempt);
      return outcome;
    });
  }

  /** The reply as the continuation expects it, or the typed error of one that does not fit. */
  private async readReply(
    parsed: ParsedForDurable,
    expect: MessageDefinition | 'code',
  ): Promise<{ ok: true; value: unknown } | { ok: false; error: Error }> {
    if (parsed.intent === 'fault') {
      return { ok: false, error: remoteFailure(parsed) };
    }
    if (parsed.returnCode !== undefined) {
      if (expect === 'code') return { ok: true, value: parsed.returnCode };
      return {
        ok: false,
        error: new ReplyMismatchError(
          `message '${expect.name}'`,
          `return code ${parsed.returnCode}`,
        ),
      };
    }
    if (expect === 'code') {
      return {
        ok: false,
        error: new ReplyMismatchError('a return code', `message '${parsed.messageType}'`),
      };
    }
    if (expect.name !== parsed.messageType) {
      return {
        ok: false,
        error: new ReplyMismatchError(
          `message '${expect.name}'`,
          `message '${parsed.messageType}'`,
        ),
      };
    }
    // Unreadable bodies are thrown: recoverability moves them to the error queue.
    if (parsed.deserializationError !== undefined) throw parsed.deserializationError;
    try {
      return { ok: true, value: await validatePayload(expect, parsed.payload) };
    } catch (error) {
      return { ok: false, error: error as Error };
    }
  }

  /**
   * After the attempt's outcome: tells the `await` of this process, or the requesting instance.
   * An attempt that failed ends here only once recoverability has moved the reply on.
   */
  private settle(attempt: Attempt): void {
    if (attempt === undefined) return;
    const { record } = attempt;
    const outcome: ContinuationOutcome = attempt.ok
      ? attempt.outcome
      : { kind: 'failed', exceptionType: thrownTypeName(attempt.error), ...codeOf(attempt.error) };
    const waiter = this.awaits.take(record.correlationId);
    if (waiter !== undefined) {
      if (!attempt.ok) waiter.reject(attempt.error);
      else if (attempt.error !== undefined) waiter.reject(attempt.error);
      else settleWaiter(waiter, record.correlationId, outcome);
      return;
    }
    if (record.requester !== this.host.instanceId) this.tell(record, outcome);
  }

  /** Best effort: the requester's queue may be gone, and the continuation has run regardless. */
  private tell(record: DurableRequestRecord, outcome: ContinuationOutcome): void {
    const intent: OutgoingIntent = {
      intent: 'reply',
      messageType: ContinuationDone.name,
      payload: { continuation: record.continuation, outcome },
      destination: { kind: 'queue', queue: `${this.host.endpointName}.${record.requester}` },
      correlationId: record.correlationId,
    };
    const failed = (error: unknown) =>
      this.host.options.logger.debug(
        'Could not tell the requesting instance a durable request ended',
        {
          correlationId: record.correlationId,
          error: errorMessage(error),
        },
      );
    try {
      Promise.resolve(this.host.build(intent))
        .then((operation) =>
          operation === undefined ? undefined : this.host.transportEndpoint.dispatch([operation]),
        )
        .catch(failed);
    } catch (error) {
      failed(error);
    }
  }
}

const codeOf = (error: unknown): { code?: string } => {
  const code = readString(error, 'code');
  return code === undefined ? {} : { code };
};
