import { MessageTooLargeError, SerializationError, UsageError } from '../errors.js';
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
}

const emptyBody = new Uint8Array(0);

// Formatting a date costs more than the rest of the headers; reuse it within the millisecond.
let lastTime = 0;
let lastTimeText = '';
function timeSentNow(): string {
  const now = Date.now();
  if (now !== lastTime) {
    lastTime = now;
    lastTimeText = new Date(now).toISOString();
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
 * Builds headers, runs outgoing middleware, serializes and checks the size. Synchronous when
 * there is no middleware: this runs for every message, and a promise per message shows in GC.
 */
export function buildOperation(
  intent: OutgoingIntent,
  settings: OutgoingSettings,
): TransportOperation | Promise<TransportOperation> {
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
  let body: Uint8Array = emptyBody;
  return runMiddleware(settings.middleware, context, async () => {
    body = serialize(intent, settings);
  }).then(() => finish(intent, settings, messageId, headers, body));
}

function serialize(intent: OutgoingIntent, settings: OutgoingSettings): Uint8Array {
  if (intent.messageType === undefined) return emptyBody;
  try {
    return settings.serializer.serialize(intent.payload);
  } catch (cause) {
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
  const message = { messageId, headers, body };
  const operation: { -readonly [K in keyof TransportOperation]: TransportOperation[K] } = {
    message,
    destination: intent.destination,
  };
  if (intent.delayMs !== undefined && intent.delayMs > 0) operation.delayMs = intent.delayMs;
  if (intent.express === true) operation.express = true;
  return operation;
}
