import { createHash } from 'node:crypto';
import type { ServiceBusMessage, ServiceBusReceivedMessage } from '@azure/service-bus';
import { Headers } from '@tidings/core';
import {
  copyEntries,
  headerCount,
  type IncomingTransportMessage,
  type OutgoingTransportMessage,
  PACKED_HEADERS,
  packHeaders,
  unpackHeaders,
} from '@tidings/core/transport';

/** Bus headers that travel as native Service Bus properties only (docs/wire-format.md). */
const NATIVE: ReadonlySet<string> = new Set<string>([
  Headers.MessageId,
  Headers.CorrelationId,
  Headers.ReplyTo,
  Headers.ContentType,
  Headers.MessageType,
]);

/** Service Bus refuses longer message ids. */
const MAX_MESSAGE_ID_LENGTH = 128;

/**
 * The native id for a bus message id: the id itself, where Service Bus takes it. A delayed retry
 * or a return from the error queue is a new send of the same message: with the original's id, a
 * queue with duplicate detection would drop it as a repeat and the message would be lost, so each
 * return and each retry round within it has its own id (one of them sent twice is still a
 * duplicate). An id too long for Service Bus (from another sender, or chosen by the caller) is
 * hashed.
 */
function nativeMessageId(messageId: string, returns: number, retryRound: number): string {
  const suffix = `${returns === 0 ? '' : `/return-${returns}`}${
    retryRound === 0 ? '' : `/retry-${retryRound}`
  }`;
  const id = `${messageId}${suffix}`;
  if (id.length <= MAX_MESSAGE_ID_LENGTH) return id;
  return `${createHash('sha256').update(messageId).digest('hex')}${suffix}`.slice(
    0,
    MAX_MESSAGE_ID_LENGTH,
  );
}

/**
 * Outgoing: message id, correlation id, reply-to, content type and message type (as `subject`)
 * travel as the native properties (tools and services in other languages see them there, and
 * the broker's duplicate detection keys on the message id); the other bus headers are packed into
 * one `tidings.headers` application property, since the AMQP encoding costs the SDK per property
 * (ADR 8); user headers are application properties of their own.
 */
export function toServiceBusMessage(
  message: OutgoingTransportMessage,
  delayMs: number | undefined,
): ServiceBusMessage {
  const h = message.headers;
  const correlationId = h[Headers.CorrelationId];
  const replyTo = h[Headers.ReplyTo];
  const contentType = h[Headers.ContentType];
  const subject = h[Headers.MessageType];
  const { packed, other: applicationProperties } = packHeaders(h, NATIVE);
  if (packed !== undefined) applicationProperties[PACKED_HEADERS] = packed;
  const busId = h[Headers.MessageId] ?? message.messageId;
  const messageId = nativeMessageId(
    busId,
    headerCount(h, Headers.Returns),
    headerCount(h, Headers.DelayedRetries),
  );
  // Where the native id is not the bus id, the bus id travels beside it; receiving prefers it.
  if (messageId !== busId) applicationProperties[Headers.MessageId] = busId;
  return {
    // A Buffer body goes out as one AMQP data section, bytes unchanged.
    body: Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength),
    messageId,
    ...(correlationId !== undefined ? { correlationId } : {}),
    ...(replyTo !== undefined ? { replyTo } : {}),
    ...(contentType !== undefined ? { contentType } : {}),
    ...(subject !== undefined ? { subject } : {}),
    applicationProperties,
    ...(delayMs !== undefined && delayMs > 0
      ? { scheduledEnqueueTimeUtc: new Date(Date.now() + delayMs) }
      : {}),
  };
}

function bodyBytes(body: unknown): Uint8Array {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (body instanceof Uint8Array) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  // An AMQP value or sequence body from another client: hand it on as JSON so core can judge it.
  try {
    return Buffer.from(JSON.stringify(body) ?? '', 'utf8');
  } catch {
    return new Uint8Array(0);
  }
}

/**
 * Incoming: application properties become headers (strings), the native properties restore the
 * bus headers they carry, then the packed `tidings.headers` fills in the rest (a foreign sender
 * may set any of them one by one instead). Never throws: core judges what is missing, and a
 * packed property that cannot be read makes the message unreadable, with the reason.
 */
export function toIncomingMessage(
  message: ServiceBusReceivedMessage,
  queue: string,
): IncomingTransportMessage {
  // A plain object (a null-prototype one is slow to fill and read); `__proto__` is skipped.
  const headers: Record<string, string> = {};
  let packed: string | undefined;
  let unreadable: string | undefined;
  const properties = message.applicationProperties ?? {};
  for (const name in properties) {
    if (name === '__proto__' || !Object.hasOwn(properties, name)) continue;
    const value = properties[name];
    if (value === undefined || value === null) continue;
    if (name === PACKED_HEADERS) {
      if (typeof value === 'string') packed = value;
      else unreadable = `'${PACKED_HEADERS}' must be a string holding a JSON object.`;
      continue;
    }
    // A map or list from another client may not turn into text at all (a `toString` that is
    // not a function, an invalid date): the message is unreadable, with the reason.
    try {
      headers[name] =
        typeof value === 'string'
          ? value
          : value instanceof Date
            ? value.toISOString()
            : String(value);
    } catch {
      unreadable ??= `'${name.slice(0, 100)}' cannot be read as text.`;
    }
  }
  const fill = (name: string, value: unknown) => {
    if (headers[name] === undefined && value !== undefined && value !== null && value !== '') {
      headers[name] = String(value);
    }
  };
  fill(Headers.CorrelationId, message.correlationId);
  fill(Headers.ReplyTo, message.replyTo);
  fill(Headers.ContentType, message.contentType);
  fill(Headers.MessageType, message.subject);
  fill(Headers.MessageId, message.messageId);
  const reason = unreadable ?? unpackHeaders(packed, headers);
  const incoming: IncomingTransportMessage = {
    messageId: headers[Headers.MessageId] ?? '',
    headers,
    body: bodyBytes(message.body),
    queue,
    // Service Bus counts earlier deliveries (0 on the first); Tidings counts this one too.
    deliveryCount: (message.deliveryCount ?? 0) + 1,
    ...(reason !== undefined ? { unreadableReason: `application property ${reason}` } : {}),
  };
  received.set(incoming, message);
  return incoming;
}

/** The native message behind each message this transport handed over, for copies of it. */
const received = new WeakMap<IncomingTransportMessage, ServiceBusReceivedMessage>();

/**
 * A copy of a received message (`TransportOperation.copyOf`): its application properties as they
 * came (a `tidings.headers` that could not be read included, values of every type unchanged),
 * with each header the copy adds as an application property of its own, and its correlation id,
 * reply-to, content type, subject and `to`. The native message id is made anew as for any send
 * (a return must not look like a repeat); the time to live is left out, so the copy does not
 * expire in the error queue. Undefined when it cannot be copied: send it afresh.
 */
export function copiedServiceBusMessage(
  copyOf: IncomingTransportMessage,
  message: OutgoingTransportMessage,
  delayMs: number | undefined,
): ServiceBusMessage | undefined {
  const native = received.get(copyOf);
  if (native === undefined) return undefined;
  const applicationProperties = copyEntries(
    native.applicationProperties ?? {},
    copyOf.headers,
    message.headers,
    NATIVE,
  );
  if (applicationProperties === undefined) return undefined;
  const fresh = toServiceBusMessage(message, delayMs);
  const { correlationId, replyTo, contentType, subject, to } = native;
  // A long bus id travels beside the native one (`toServiceBusMessage`).
  const busId = fresh.applicationProperties?.[Headers.MessageId];
  if (busId !== undefined) applicationProperties[Headers.MessageId] = busId;
  return {
    body: fresh.body,
    messageId: fresh.messageId as string,
    ...(correlationId !== undefined ? { correlationId } : {}),
    ...(replyTo !== undefined ? { replyTo } : {}),
    ...(contentType !== undefined ? { contentType } : {}),
    ...(subject !== undefined ? { subject } : {}),
    ...(to !== undefined ? { to } : {}),
    applicationProperties: applicationProperties as ServiceBusMessage['applicationProperties'] & {},
    ...(fresh.scheduledEnqueueTimeUtc !== undefined
      ? { scheduledEnqueueTimeUtc: fresh.scheduledEnqueueTimeUtc }
      : {}),
  };
}
