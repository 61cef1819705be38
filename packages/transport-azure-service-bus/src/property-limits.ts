import type { ServiceBusMessage } from '@azure/service-bus';
import { Headers, MessageTooLargeError } from '@tidings/core';
import {
  type IncomingTransportMessage,
  type OutgoingTransportMessage,
  PACKED_HEADERS,
} from '@tidings/core/transport';
import { copiedServiceBusMessage, toServiceBusMessage } from './azure-service-bus-headers.js';
import { serviceBusLimits } from './limits.js';

/**
 * A message whose headers Service Bus would refuse: one application property above 32 KB, or all
 * of them (with the system properties) above 64 KB. Refused before sending, where the service
 * would fail the send (and, for a message on its way to the error queue, every attempt).
 */
export class MessagePropertiesTooLargeError extends MessageTooLargeError {
  /** The header over the per-property limit; undefined when the total is over. */
  readonly header: string | undefined;
  constructor(
    messageType: string,
    header: string | undefined,
    sizeBytes: number,
    maxBytes: number,
  ) {
    super(messageType, sizeBytes, maxBytes, 'azure-service-bus');
    this.header = header;
    this.message =
      header === undefined
        ? `Message '${messageType}' has ${sizeBytes} bytes of headers; Service Bus accepts at most ${maxBytes} for a message's properties together. Carry large values in the body instead.`
        : `Header '${header.slice(0, 100)}' of message '${messageType}' takes ${sizeBytes} bytes; Service Bus accepts at most ${maxBytes} for one property. Carry large values in the body instead.`;
  }
}

interface Excess {
  /** The application property over its limit; undefined when the total is over. */
  readonly property: string | undefined;
  readonly size: number;
  readonly max: number;
}

const bytes = (value: unknown): number =>
  typeof value === 'string' ? Buffer.byteLength(value) : value === undefined ? 0 : 8;

/**
 * Where a message is over Service Bus's property limits, counted as name plus value in UTF-8
 * bytes per property, the total adding message id, correlation id, reply-to, subject and content
 * type (the service counts the system properties in the same 64 KB).
 */
function excessOf(message: ServiceBusMessage): Excess | undefined {
  let total = 0;
  const properties = message.applicationProperties ?? {};
  for (const name in properties) {
    const size = Buffer.byteLength(name) + bytes(properties[name]);
    if (size > serviceBusLimits.maxPropertyBytes) {
      return { property: name, size, max: serviceBusLimits.maxPropertyBytes };
    }
    total += size;
  }
  total +=
    bytes(message.messageId) +
    bytes(message.correlationId) +
    bytes(message.replyTo) +
    bytes(message.subject) +
    bytes(message.contentType);
  if (total > serviceBusLimits.maxPropertiesBytes) {
    return { property: undefined, size: total, max: serviceBusLimits.maxPropertiesBytes };
  }
  return undefined;
}

/**
 * True when the headers cannot be over any limit: six bytes per character (what JSON escaping
 * can take in the packed headers) plus quotes and separators, counted without encoding.
 */
function surelyWithin(message: OutgoingTransportMessage): boolean {
  let units = message.messageId.length;
  for (const name in message.headers) {
    units += name.length + (message.headers[name] as string).length + 8;
  }
  return 6 * units <= serviceBusLimits.maxPropertyBytes;
}

const typeOf = (message: OutgoingTransportMessage) =>
  message.headers[Headers.MessageType] ?? message.messageId;

/** The Service Bus message, or a MessagePropertiesTooLargeError for headers it would refuse. */
export function toCheckedServiceBusMessage(
  message: OutgoingTransportMessage,
  delayMs: number | undefined,
  copyOf?: IncomingTransportMessage,
): ServiceBusMessage {
  // A copy as it came where it fits; else one made afresh, fitted below if need be.
  const copy = copyOf === undefined ? undefined : copiedServiceBusMessage(copyOf, message, delayMs);
  if (copy !== undefined && excessOf(copy) === undefined) return copy;
  const native = toServiceBusMessage(message, delayMs);
  if (surelyWithin(message)) return native;
  const excess = excessOf(native);
  if (excess === undefined) return native;
  if (isErrorQueueMove(message)) return fitted(message, delayMs);
  throw new MessagePropertiesTooLargeError(
    typeOf(message),
    excess.property === PACKED_HEADERS ? 'tidings.* (bus headers)' : excess.property,
    excess.size,
    excess.max,
  );
}

/** A copy on its way to an error queue carries why it failed. */
function isErrorQueueMove(message: OutgoingTransportMessage): boolean {
  return (
    message.headers[Headers.FailedQueue] !== undefined &&
    message.headers[Headers.ExceptionType] !== undefined
  );
}

/** Headers a fitted copy keeps whole: its identity, routing and where it failed. */
const KEPT: ReadonlySet<string> = new Set<string>([
  Headers.MessageId,
  Headers.MessageType,
  Headers.CorrelationId,
  Headers.ReplyTo,
  Headers.ContentType,
  Headers.FailedQueue,
  Headers.ExceptionType,
]);
/** Cut first: the longest and least needed. */
const CUT_FIRST = [Headers.ExceptionStack, Headers.ExceptionMessage] as const;
const ELLIPSIS = '…';

/** The first `max` UTF-8 bytes of `value`, whole characters only. */
function cutBytes(value: string, max: number): string {
  const buffer = Buffer.from(value);
  if (buffer.length <= max) return value;
  let end = Math.max(0, max);
  // Back off continuation bytes (10xxxxxx) so no character is split.
  while (end > 0 && ((buffer[end] as number) & 0xc0) === 0x80) end--;
  return buffer.subarray(0, end).toString();
}

/**
 * A copy for the error queue that Service Bus accepts: header values are cut (marked with an
 * ellipsis), the exception stack and message first, then the largest others, until the
 * properties fit. Refusing it would fail the move on every delivery until the service
 * dead-letters the message, with its failure never recorded.
 */
function fitted(message: OutgoingTransportMessage, delayMs: number | undefined): ServiceBusMessage {
  const headers = { ...message.headers };
  for (let attempt = 0; attempt < 100; attempt++) {
    const native = toServiceBusMessage({ ...message, headers }, delayMs);
    const excess = excessOf(native);
    if (excess === undefined) return native;
    const over = excess.size - excess.max;
    // A user header over the per-property limit is itself the one to cut; otherwise (the packed
    // bus headers, or the total) the failure details first, then the largest header left.
    let name: string | undefined =
      excess.property !== undefined && excess.property !== PACKED_HEADERS
        ? (Object.keys(headers).find((h) => h === excess.property) ?? undefined)
        : undefined;
    if (name === undefined) {
      const packedOnly = excess.property === PACKED_HEADERS;
      const cuttable = (h: string) =>
        !KEPT.has(h) &&
        (headers[h] as string).length > 1 &&
        (!packedOnly || h.startsWith('tidings.'));
      name =
        CUT_FIRST.find((h) => headers[h] !== undefined && cuttable(h)) ??
        Object.keys(headers)
          .filter(cuttable)
          .sort((a, b) => bytes(headers[b]) - bytes(headers[a]))[0];
    }
    if (name === undefined) break;
    const value = headers[name] as string;
    // Escaping in the packed JSON can take up to six bytes a character: cut generously.
    const kept = cutBytes(value, Buffer.byteLength(value) - over - 64);
    headers[name] = kept === '' ? ELLIPSIS : `${kept}${ELLIPSIS}`;
  }
  const native = toServiceBusMessage({ ...message, headers }, delayMs);
  const excess = excessOf(native);
  if (excess === undefined) return native;
  throw new MessagePropertiesTooLargeError(
    typeOf(message),
    excess.property,
    excess.size,
    excess.max,
  );
}
