import type { OutgoingIntent } from '../endpoint/outgoing.js';
import { type RemoteFailure, RemoteFailureError } from '../errors.js';
import { defineMessage } from '../messages/define-message.js';
import { isValidDestination } from '../messages/destination-name.js';
import { Headers } from '../messages/headers.js';
import { readString, thrownMessage, thrownTypeName } from '../thrown-value.js';
import type { IncomingTransportMessage } from '../transport/transport.js';

/**
 * What a fault reply tells the requester about a failure on the far side:
 * `off` sends none (the request waits for its timeout), `type` the exception's type and code,
 * `type-and-message` its message too (which may carry data the requester should not see).
 */
export type FaultReplyDetail = 'off' | 'type' | 'type-and-message';

/**
 * A fault reply (intent `fault`): the message a request or send carried was moved to the error
 * queue on the far side. `request` rejects with `RemoteFailureError`; to see faults of plain sends
 * (full duplex), handle it like any reply type: `endpoint.handle(Fault, (fault) => …)`.
 */
export const Fault = defineMessage<RemoteFailure>('tidings.Fault');

/** Whether a message takes a fault reply: a request or send with a usable reply-to. */
function faultAddress(raw: IncomingTransportMessage): string | undefined {
  const intent = raw.headers[Headers.Intent];
  // Replies, events and faults get none: nobody waits on them, and faults must never loop.
  if (intent !== undefined && intent !== 'send') return undefined;
  const replyTo = raw.headers[Headers.ReplyTo];
  return isValidDestination(replyTo) ? replyTo : undefined;
}

/** The fault reply to send for a message moved to the error queue, or undefined for none. */
export function faultReplyIntent(
  raw: IncomingTransportMessage,
  error: unknown,
  detail: FaultReplyDetail,
): OutgoingIntent | undefined {
  if (detail === 'off') return undefined;
  const replyTo = faultAddress(raw);
  if (replyTo === undefined) return undefined;
  const headers = raw.headers;
  const messageId = headers[Headers.MessageId] ?? raw.messageId;
  const payload: { -readonly [K in keyof RemoteFailure]: RemoteFailure[K] } = {
    messageId,
    exceptionType: thrownTypeName(error),
  };
  const messageType = headers[Headers.MessageType];
  if (messageType !== undefined) payload.messageType = messageType;
  const code = readString(error, 'code');
  if (code !== undefined) payload.code = code;
  if (detail === 'type-and-message') payload.message = thrownMessage(error);
  return {
    intent: 'fault',
    messageType: Fault.name,
    payload,
    destination: { kind: 'queue', queue: replyTo },
    correlationId: headers[Headers.CorrelationId] ?? messageId,
    conversationId: headers[Headers.ConversationId] ?? messageId,
    // Like a reply: only an in-memory callback waits for it when the request said so (ADR 13).
    express: headers[Headers.ReplyDurability] === 'express',
  };
}

/** The error a fault reply settles a request with; a fault that cannot be read still rejects it. */
export function remoteFailure(fault: {
  readonly payload: unknown;
  readonly messageId: string;
  readonly raw: IncomingTransportMessage;
}): RemoteFailureError {
  const payload = fault.payload as Partial<RemoteFailure> | undefined;
  const read = (key: keyof RemoteFailure) =>
    typeof payload?.[key] === 'string' ? (payload[key] as string) : undefined;
  const result: { -readonly [K in keyof RemoteFailure]: RemoteFailure[K] } = {
    messageId: read('messageId') ?? fault.messageId,
    exceptionType: read('exceptionType') ?? 'unknown',
  };
  for (const key of ['messageType', 'code', 'message'] as const) {
    const value = read(key);
    if (value !== undefined) result[key] = value;
  }
  return new RemoteFailureError(result);
}
