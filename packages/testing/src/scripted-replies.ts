import { type MessageDefinition, type Reply, UsageError } from '@tidings/core';
import { type CannedReply, type CannedRequest, toReply, unwrapReply } from './canned-reply.js';
import { describePayload, matchesPayload, type PayloadMatcher } from './payload-matcher.js';
import type { RecordedSend } from './recorded.js';

/** A send that waited for a reply (`request`, `send(...).register`). */
export interface RecordedRequest<T = unknown> extends RecordedSend<T> {
  /** What the caller expected: a message type, `'code'`, or `'any'`. */
  readonly expect: MessageDefinition | 'code' | 'any';
  /** The canned reply it got, once answered; undefined if none fitted. */
  readonly reply: Reply | undefined;
  /** Why it failed (no canned reply, a mismatch, a throwing reply function); undefined if it did not. */
  readonly error: unknown;
}

/** `request` (or `register`) found no canned reply for its message. */
export class NoCannedReplyError extends UsageError {
  readonly messageType: string;
  readonly payload: unknown;
  constructor(messageType: string, payload: unknown, registered: number) {
    super(
      `No canned reply for a request '${messageType}' with payload ${describePayload(payload)}: ${
        registered === 0
          ? `no reply is registered for '${messageType}'`
          : `none of the ${registered} replies registered for '${messageType}' matches`
      }. Add one with endpoint.when(Definition, matcher, reply).`,
    );
    this.messageType = messageType;
    this.payload = payload;
  }
}

interface Registration {
  readonly messageType: string;
  readonly matcher: PayloadMatcher<unknown> | undefined;
  readonly reply: CannedReply<unknown>;
}

/** The replies a test endpoint's `when` scripted, and how a request gets its answer from them. */
export class ScriptedReplies {
  private readonly registrations: Registration[] = [];
  private readonly requests: RecordedRequest[];
  private pendingCount = 0;

  /** Every request answered is recorded in `requests` (the endpoint's own list). */
  constructor(requests: RecordedRequest[]) {
    this.requests = requests;
  }

  /** Requests waiting for their reply. */
  get pending(): number {
    return this.pendingCount;
  }

  /** Adds a reply: `args` as given to `when` after the definition, `[reply]` or `[matcher, reply]`. */
  add(definition: MessageDefinition, args: readonly unknown[]): void {
    if (typeof definition?.name !== 'string') {
      throw new UsageError(
        'when() needs a message definition first, e.g. when(PlaceOrder, reply).',
      );
    }
    const [matcher, reply] = args.length >= 2 ? args : [undefined, args[0]];
    if (reply === undefined) {
      throw new UsageError(`when(${definition.name}, ...) needs a reply.`);
    }
    this.registrations.push({
      messageType: definition.name,
      matcher: matcher as PayloadMatcher<unknown> | undefined,
      reply: reply as CannedReply<unknown>,
    });
  }

  /**
   * Answers a request: the reply it gets and what `request` resolves with (the payload, the code
   * or the reply), checked against `expect` as a real endpoint checks it.
   */
  async answer(
    record: RecordedSend,
    expect: MessageDefinition | 'code' | undefined,
  ): Promise<{ reply: Reply; value: unknown }> {
    const request: { -readonly [K in keyof RecordedRequest]: RecordedRequest[K] } = {
      ...record,
      expect: expect ?? 'any',
      reply: undefined,
      error: undefined,
    };
    this.requests.push(request);
    this.pendingCount++;
    try {
      const reply = await this.cannedReply(record);
      request.reply = reply;
      return { reply, value: await unwrapReply(reply, expect) };
    } catch (error) {
      request.error = error;
      throw error;
    } finally {
      this.pendingCount--;
    }
  }

  private async cannedReply(record: RecordedSend): Promise<Reply> {
    const candidates = this.registrations.filter((r) => r.messageType === record.messageType);
    const match = candidates.find(
      (r) => r.matcher === undefined || matchesPayload(r.matcher, record.payload),
    );
    if (match === undefined) {
      throw new NoCannedReplyError(record.messageType, record.payload, candidates.length);
    }
    const request: CannedRequest<unknown> = {
      payload: record.payload,
      messageType: record.messageType,
      messageId: record.messageId,
      options: record.options as Readonly<Record<string, unknown>>,
    };
    const answer =
      typeof match.reply === 'function' ? await match.reply(record.payload, request) : match.reply;
    return toReply(answer, record.messageType, record.messageId);
  }
}
