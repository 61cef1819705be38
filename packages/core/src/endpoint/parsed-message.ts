import { DeserializationError, MalformedMessageError } from '../errors.js';
import { Headers } from '../messages/headers.js';
import type { Serializer } from '../serialization/serializer.js';
import type { IncomingTransportMessage } from '../transport/transport.js';

/** A received message with its bus headers read and its body deserialized (or why it was not). */
export interface ParsedMessage {
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
 * Reads a message's headers and deserializes its body. Returns the error of a message no handler
 * could ever read; a body that does not deserialize is kept as `deserializationError` instead,
 * since a reply's callback still learns of it.
 */
export function parseMessage(
  raw: IncomingTransportMessage,
  serializer: Serializer,
): ParsedMessage | Error {
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
