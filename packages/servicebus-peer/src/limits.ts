import type { Message } from 'rhea';
import { amqpMessage } from './rhea-internals.js';

/** Service Bus's property limits ("Service Bus quotas"): per property, and for all together. */
export const MAX_PROPERTY_BYTES = 32 * 1024;
export const MAX_PROPERTIES_BYTES = 64 * 1024;

/** System properties the 64 KB header limit counts besides the application properties. */
const SYSTEM = [
  'message_id',
  'correlation_id',
  'reply_to',
  'subject',
  'content_type',
  'to',
] as const;

const bytesOf = (value: unknown): number =>
  typeof value === 'string'
    ? Buffer.byteLength(value)
    : Buffer.isBuffer(value)
      ? value.length
      : value === undefined || value === null
        ? 0
        : 8;

const bodyBytes = (body: unknown): number => {
  if (Buffer.isBuffer(body)) return body.length;
  const section = body as { content?: unknown } | undefined;
  if (section !== null && typeof section === 'object' && Buffer.isBuffer(section.content)) {
    return section.content.length;
  }
  return typeof body === 'string' ? Buffer.byteLength(body) : 0;
};

/**
 * Why Service Bus would refuse this message's properties, or undefined. A property counts its
 * name and value in UTF-8 bytes; the total adds the system properties.
 */
export function propertyViolation(message: Message): string | undefined {
  let total = 0;
  const properties = message.application_properties ?? {};
  for (const name of Object.keys(properties)) {
    const size = Buffer.byteLength(name) + bytesOf(properties[name]);
    if (size > MAX_PROPERTY_BYTES) {
      return `The property '${name.slice(0, 100)}' is ${size} bytes; a property may take at most ${MAX_PROPERTY_BYTES}.`;
    }
    total += size;
  }
  for (const name of SYSTEM) total += bytesOf(message[name]);
  if (total > MAX_PROPERTIES_BYTES) {
    return `The message's properties take ${total} bytes; together they may take at most ${MAX_PROPERTIES_BYTES}.`;
  }
  return undefined;
}

/**
 * The encoded size of a message sent as one transfer, counted exactly only near `limit`: most
 * messages are far below, and encoding each again would double the peer's work.
 */
export function transferSize(message: Message, limit: number): number {
  let estimate = bodyBytes(message.body);
  const properties = message.application_properties ?? {};
  for (const name of Object.keys(properties)) {
    estimate += Buffer.byteLength(name) + bytesOf(properties[name]);
  }
  if (estimate < limit - 16 * 1024) return estimate;
  return amqpMessage.encode(message).length;
}
