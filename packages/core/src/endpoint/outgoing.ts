import { isTidingsError, MessageTooLargeError, SerializationError, UsageError } from '../errors.js';
import { Headers, type MessageIntent } from '../messages/headers.js';
import {
  type OutgoingContext,
  type OutgoingMiddleware,
  runMiddleware,
} from '../pipeline/middleware.js';
import type { Serializer } from '../serialization/serializer.js';
import { headerSize } from '../transport/packed-headers.js';
import type { TransportDestination, TransportOperation } from '../transport/transport.js';
import { newId } from '../util.js';

/** Everything needed to build one outgoing message. */
export interface OutgoingIntent {
  readonly intent: MessageIntent;
  /** Undefined for a return-code reply. */
  readonly messageType: string | undefined;
  readonly payload?: unknown;
  readonly returnCode?: number | undefined;
  readonly destination: TransportDestination;
  readonly messageId?: string | undefined;
  readonly correlationId?: string | undefined;
  readonly conversationId?: string | undefined;
  readonly replyTo?: string | undefined;
  readonly userHeaders?: Readonly<Record<string, string>> | undefined;
  readonly delayMs?: number | undefined;
  /** The message itself may travel without durability (`TransportOperation.express`). */
  readonly express?: boolean | undefined;
  /** Only an in-memory callback waits for replies to it: marks it `tidings.reply-durability`. */
  readonly expressReply?: boolean | undefined;
}

export interface OutgoingSettings {
  readonly endpointName: string;
  readonly instanceId: string | undefined;
  readonly serializer: Serializer;
  readonly maxMessageSizeBytes: number;
  readonly transportName: string;
  readonly middleware: readonly OutgoingMiddleware[];
  /** The transport's declared limits (`TransportCapabilities`); undefined: none. */
  readonly maxMessageIdBytes?: number | undefined;
  readonly maxHeaderNameBytes?: number | undefined;
}

const emptyBody = new Uint8Array(0);

// Formatting a date costs more than the rest of the headers (`toISOString` took 2-8 µs here):
// reuse it within the millisecond, and its part up to the seconds within the second.
let lastTime = 0;
let lastTimeText = '';
let lastSecond = Number.NaN;
/** `2026-12-07T13:44:17.` for `lastSecond`. */
let secondPrefix = '';
function timeSentNow(): string {
  const now = Date.now();
  if (now !== lastTime) {
    lastTime = now;
    const second = Math.floor(now / 1000);
    if (second !== lastSecond) {
      lastSecond = second;
      secondPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    }
    const ms = now - second * 1000;
    lastTimeText = `${secondPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`;
  }
  return lastTimeText;
}

/** Refuses reserved (`tidings.`) and non-string headers with `UsageError`, as every send does. */
export function checkUserHeaders(headers: Readonly<Record<string, string>> | undefined): void {
  if (headers === undefined) return;
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith('tidings.')) {
      throw new UsageError(
        `Header '${name}' is reserved: names starting with 'tidings.' are set by Tidings.`,
      );
    }
    if (typeof value !== 'string') {
      throw new UsageError(`Header '${name}' must be a string, got ${typeof value}.`);
    }
  }
}

/**
 * Size as the transports count it: body plus header names and values, in UTF-8 bytes, bus headers'
 * values as packed JSON (`headerSize`).
 */
export function messageSize(headers: Readonly<Record<string, string>>, body: Uint8Array): number {
  let size = body.byteLength;
  // String(): a received message's headers may hold something else (it is then malformed).
  for (const name in headers) size += headerSize(name, String(headers[name]));
  return size;
}

/**
 * The most bytes one UTF-16 unit can take as `messageSize` counts it: six, for a control character
 * or a lone surrogate in a bus header's packed JSON (`\uXXXX`); UTF-8 alone takes at most three.
 */
const MAX_BYTES_PER_UNIT = 6;

/**
 * True when the message cannot be over `limit` bytes even at six bytes per header character:
 * counting characters is cheaper than counting bytes, and most messages are far below any limit.
 */
function surelyWithin(
  headers: Readonly<Record<string, string>>,
  body: Uint8Array,
  limit: number,
): boolean {
  let units = 0;
  for (const name in headers) units += name.length + (headers[name] as string).length;
  return body.byteLength + MAX_BYTES_PER_UNIT * units <= limit;
}

/**
 * Whether a message of these headers and body is at most `limit` bytes as core counts a message's
 * size (`maxMessageSizeBytes`), counting bytes only when the length alone cannot tell. For what
 * adds headers after core's own check: trace context, say.
 */
export function fitsWithin(
  headers: Readonly<Record<string, string>>,
  body: Uint8Array,
  limit: number,
): boolean {
  return surelyWithin(headers, body, limit) || messageSize(headers, body) <= limit;
}

/** UTF-8 bytes over `limit`, counting bytes only when the length alone cannot tell. */
function overBytes(text: string, limit: number): boolean {
  // One UTF-16 unit is at most three UTF-8 bytes.
  return text.length > limit || (text.length * 3 > limit && Buffer.byteLength(text) > limit);
}

/**
 * Refuses a message id or header name longer than the transport takes (RabbitMQ's 255-byte short
 * strings): the broker client would fail the send with an error that looks retryable.
 */
function checkNameLimits(
  intent: OutgoingIntent,
  settings: OutgoingSettings,
  messageId: string,
  headers: Readonly<Record<string, string>>,
): void {
  const what = intent.messageType ?? `return code ${intent.returnCode}`;
  const idLimit = settings.maxMessageIdBytes;
  if (idLimit !== undefined && overBytes(messageId, idLimit)) {
    throw new UsageError(
      `The message id of '${what}' is ${Buffer.byteLength(messageId)} bytes; the ${settings.transportName} transport takes at most ${idLimit}. Use a shorter messageId.`,
    );
  }
  const nameLimit = settings.maxHeaderNameBytes;
  if (nameLimit === undefined) return;
  for (const name in headers) {
    if (overBytes(name, nameLimit)) {
      throw new UsageError(
        `Header '${name.length > 40 ? `${name.slice(0, 40)}…` : name}' of '${what}' has a name of ${Buffer.byteLength(name)} bytes; the ${settings.transportName} transport takes at most ${nameLimit}. Use a shorter header name.`,
      );
    }
  }
}

/**
 * A built message, or undefined when outgoing middleware returned without calling `next()`:
 * it chose not to send (a filter, a feature switch), so nothing is sent and the send resolves.
 */
export type BuiltOperation = TransportOperation | undefined;

/**
 * Builds headers, runs outgoing middleware, serializes and checks the size. Synchronous when
 * there is no middleware: this runs for every message, and a promise per message shows in GC.
 */
export function buildOperation(
  intent: OutgoingIntent,
  settings: OutgoingSettings,
): TransportOperation | Promise<BuiltOperation> {
  const messageId = intent.messageId ?? newId();
  const headers: Record<string, string> = intent.userHeaders ? { ...intent.userHeaders } : {};
  headers[Headers.MessageId] = messageId;
  headers[Headers.CorrelationId] = intent.correlationId ?? messageId;
  headers[Headers.ConversationId] = intent.conversationId ?? messageId;
  headers[Headers.Intent] = intent.intent;
  headers[Headers.TimeSent] = timeSentNow();
  headers[Headers.OriginatingEndpoint] = settings.endpointName;
  if (settings.instanceId !== undefined) headers[Headers.OriginatingInstance] = settings.instanceId;
  if (intent.replyTo !== undefined) headers[Headers.ReplyTo] = intent.replyTo;
  if (intent.expressReply === true) headers[Headers.ReplyDurability] = 'express';
  if (intent.messageType !== undefined) {
    headers[Headers.MessageType] = intent.messageType;
    headers[Headers.ContentType] = settings.serializer.contentType;
  }
  if (intent.returnCode !== undefined) headers[Headers.ReturnCode] = String(intent.returnCode);

  if (settings.middleware.length === 0) {
    return finish(intent, settings, messageId, headers, serialize(intent, settings));
  }
  const context: OutgoingContext = {
    messageId,
    messageType: intent.messageType,
    payload: intent.payload,
    headers,
    destination: intent.destination,
  };
  let body: Uint8Array | undefined;
  return runMiddleware(settings.middleware, context, async () => {
    body = serialize(intent, settings);
  }).then(() =>
    // No middleware called next(): the message was never serialized, and is not sent.
    body === undefined ? undefined : finish(intent, settings, messageId, headers, body),
  );
}

function serialize(intent: OutgoingIntent, settings: OutgoingSettings): Uint8Array {
  if (intent.messageType === undefined) return emptyBody;
  try {
    return settings.serializer.serialize(intent.payload, intent.messageType);
  } catch (cause) {
    // A typed refusal (a key receivers reject) already says what is wrong with the payload.
    if (isTidingsError(cause)) throw cause;
    throw new SerializationError(intent.messageType, cause);
  }
}

function finish(
  intent: OutgoingIntent,
  settings: OutgoingSettings,
  messageId: string,
  headers: Record<string, string>,
  body: Uint8Array,
): TransportOperation {
  const limit = settings.maxMessageSizeBytes;
  if (!surelyWithin(headers, body, limit)) {
    const size = messageSize(headers, body);
    if (size > limit) {
      throw new MessageTooLargeError(
        intent.messageType ?? `return code ${intent.returnCode}`,
        size,
        limit,
        settings.transportName,
      );
    }
  }
  checkNameLimits(intent, settings, messageId, headers);
  const message = { messageId, headers, body };
  const operation: { -readonly [K in keyof TransportOperation]: TransportOperation[K] } = {
    message,
    destination: intent.destination,
  };
  if (intent.delayMs !== undefined && intent.delayMs > 0) operation.delayMs = intent.delayMs;
  if (intent.express === true) operation.express = true;
  return operation;
}
