import {
  Headers,
  type MessageDefinition,
  type Reply,
  ReplyMismatchError,
  UsageError,
  validatePayload,
} from '@tidings/core';

/** A reply message for a canned answer: make it with `replyMessage(Definition, payload)`. */
export interface CannedMessage<R = unknown> {
  readonly kind: 'message';
  readonly definition: MessageDefinition<R>;
  readonly payload: R;
  readonly headers?: Readonly<Record<string, string>>;
}

/** What a request is answered with: a message, a return code, or either computed from the request. */
export type CannedAnswer = CannedMessage<unknown> | number;

/** What the request looked like, for a computed answer. */
export interface CannedRequest<T> {
  readonly payload: T;
  readonly messageType: string;
  readonly messageId: string;
  readonly options: Readonly<Record<string, unknown>>;
}

/**
 * A canned reply: a message (`replyMessage(Pong, {...})`), a return code (a number, e.g. an enum
 * value), or a function of the request returning either (it may throw, or return a rejected
 * promise, to make the request fail with that error).
 */
export type CannedReply<T> =
  | CannedAnswer
  | ((payload: T, request: CannedRequest<T>) => CannedAnswer | Promise<CannedAnswer>);

/** A reply message for `when(...)`: the definition types the payload. */
export function replyMessage<R>(
  definition: MessageDefinition<R>,
  payload: R,
  headers?: Readonly<Record<string, string>>,
): CannedMessage<R> {
  return { kind: 'message', definition, payload, ...(headers ? { headers } : {}) };
}

function isCannedMessage(value: unknown): value is CannedMessage {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as CannedMessage).kind === 'message' &&
    typeof (value as CannedMessage).definition?.name === 'string'
  );
}

/** Turns a canned answer into the reply a callback would see, with reply headers. */
export function toReply(answer: unknown, messageType: string, correlationId: string): Reply {
  const base = {
    [Headers.CorrelationId]: correlationId,
    [Headers.ConversationId]: correlationId,
    [Headers.Intent]: 'reply',
    [Headers.TimeSent]: new Date().toISOString(),
  };
  if (typeof answer === 'number') {
    if (!Number.isSafeInteger(answer)) {
      throw new UsageError(
        `The canned reply to '${messageType}' is ${answer}; a return code must be an integer.`,
      );
    }
    return { kind: 'code', code: answer, headers: { ...base, [Headers.ReturnCode]: `${answer}` } };
  }
  if (isCannedMessage(answer)) {
    return {
      kind: 'message',
      messageType: answer.definition.name,
      body: answer.payload,
      headers: {
        ...answer.headers,
        ...base,
        [Headers.MessageType]: answer.definition.name,
        [Headers.ContentType]: 'application/json',
      },
    };
  }
  throw new UsageError(
    `The canned reply to '${messageType}' is neither a return code nor a message: use a number or replyMessage(Definition, payload).`,
  );
}

/**
 * Checks a reply against what the request expects, as a real endpoint does: a mismatch is a
 * `ReplyMismatchError`, a message failing the expected definition's schema a `ValidationError`.
 * Resolves with what `request` resolves with.
 */
export async function unwrapReply(
  reply: Reply,
  expect: MessageDefinition | 'code' | undefined,
): Promise<unknown> {
  if (expect === undefined) return reply;
  if (expect === 'code') {
    if (reply.kind === 'code') return reply.code;
    throw new ReplyMismatchError('a return code', `message '${reply.messageType}'`);
  }
  if (reply.kind === 'code') {
    throw new ReplyMismatchError(`message '${expect.name}'`, `return code ${reply.code}`);
  }
  if (reply.messageType !== expect.name) {
    throw new ReplyMismatchError(`message '${expect.name}'`, `message '${reply.messageType}'`);
  }
  return validatePayload(expect, reply.body);
}
