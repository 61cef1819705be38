import { createHash } from 'node:crypto';
import { Headers } from '@tidings/core';
import { copyEntries, PACKED_HEADERS, packHeaders, unpackHeaders } from '@tidings/core/transport';

/** Headers the broker adds (dead-lettering, quorum queues): not part of the message. */
function isBrokerHeader(name: string): boolean {
  return (
    name === 'x-death' ||
    name === 'x-delivery-count' ||
    name === 'x-received-from' ||
    name.startsWith('x-first-death-') ||
    name.startsWith('x-last-death-')
  );
}

/** Bus headers that travel as AMQP basic properties instead of in the headers table (app-id: the sending application, i.e. the originating endpoint). */
const nativeHeaders = new Set<string>([
  Headers.MessageId,
  Headers.CorrelationId,
  Headers.ReplyTo,
  Headers.ContentType,
  Headers.MessageType,
  Headers.OriginatingEndpoint,
]);

/**
 * Bus headers to AMQP: six travel as native properties (message-id, correlation-id, reply-to,
 * content-type, type, app-id), the other bus headers packed into one `tidings.headers` table
 * entry (ADR 8), user headers as table entries of their own. amqplib and the broker pay per
 * table entry, so nothing is sent twice; `headersFromAmqp` restores them.
 */
export function amqpPropertiesFor(headers: Readonly<Record<string, string>>): {
  headers: Record<string, string>;
  messageId?: string;
  correlationId?: string;
  replyTo?: string;
  contentType?: string;
  type?: string;
  appId?: string;
} {
  const { packed, other: table } = packHeaders(headers, nativeHeaders);
  if (packed !== undefined) table[PACKED_HEADERS] = packed;
  const properties: ReturnType<typeof amqpPropertiesFor> = { headers: table };
  const messageId = headers[Headers.MessageId];
  if (messageId !== undefined) properties.messageId = messageId;
  const correlationId = headers[Headers.CorrelationId];
  if (correlationId !== undefined) properties.correlationId = correlationId;
  const replyTo = headers[Headers.ReplyTo];
  if (replyTo !== undefined) properties.replyTo = replyTo;
  const contentType = headers[Headers.ContentType];
  if (contentType !== undefined) properties.contentType = contentType;
  const type = headers[Headers.MessageType];
  if (type !== undefined) properties.type = type;
  const appId = headers[Headers.OriginatingEndpoint];
  if (appId !== undefined) properties.appId = appId;
  return properties;
}

/** The AMQP basic properties Tidings reads, as amqplib hands them over. */
export interface NativeProperties {
  readonly headers?: Record<string, unknown> | undefined;
  readonly messageId?: unknown;
  readonly correlationId?: unknown;
  readonly replyTo?: unknown;
  readonly contentType?: unknown;
  readonly type?: unknown;
  readonly appId?: unknown;
}

/**
 * AMQP to Tidings headers (strings): the headers table, then the native properties for the bus
 * headers that travel there (`amqpPropertiesFor`), then the packed `tidings.headers` entry, so a
 * client that sets only `message_id`, `type` or `reply_to`, or `tidings.*` table entries one by
 * one, is understood too. A packed entry that cannot be read gives the reason instead.
 */
export function headersFromAmqp(properties: NativeProperties): {
  headers: Record<string, string>;
  unreadableReason: string | undefined;
} {
  const result: Record<string, string> = {};
  let packed: string | undefined;
  const table = properties.headers;
  if (table !== undefined && table !== null) {
    for (const name of Object.keys(table)) {
      if (name === '__proto__' || isBrokerHeader(name)) continue;
      const value = table[name];
      let text: string | undefined;
      if (typeof value === 'string') text = value;
      else if (
        typeof value === 'number' ||
        typeof value === 'boolean' ||
        typeof value === 'bigint'
      ) {
        text = String(value);
      } else if (Buffer.isBuffer(value)) text = value.toString('utf8');
      if (text === undefined) continue;
      if (name === PACKED_HEADERS) packed = text;
      else result[name] = text;
    }
  }
  fill(result, Headers.MessageId, properties.messageId);
  fill(result, Headers.CorrelationId, properties.correlationId);
  fill(result, Headers.ReplyTo, properties.replyTo);
  fill(result, Headers.ContentType, properties.contentType);
  fill(result, Headers.MessageType, properties.type);
  fill(result, Headers.OriginatingEndpoint, properties.appId);
  const reason = unpackHeaders(packed, result);
  return {
    headers: result,
    unreadableReason: reason === undefined ? undefined : `headers table entry ${reason}`,
  };
}

function fill(headers: Record<string, string>, name: string, value: unknown): void {
  if (headers[name] === undefined && typeof value === 'string' && value !== '') {
    headers[name] = value;
  }
}

/** The quorum queue's count of earlier deliveries, as 1-based delivery count. */
export function deliveryCountOf(properties: NativeProperties): number {
  const previous = properties.headers?.['x-delivery-count'];
  return typeof previous === 'number' && previous >= 0 ? previous + 1 : 1;
}

/**
 * An id for a message its sender gave none (`amqp-publish` sets no `message-id`): a hash of what
 * the sender wrote, its headers and body, without what the broker adds. The same on every
 * delivery of the message, and after a restart, so idempotent handlers and an inbox can rely on
 * it. Two messages with the same headers and body get the same id: a sender that means them as
 * two must give them ids.
 */
export function contentMessageId(headers: Readonly<Record<string, string>>, body: Buffer): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(headers).sort()) {
    hash
      .update(name)
      .update('\0')
      .update(headers[name] as string)
      .update('\0');
  }
  return `amqp-sha256:${hash.update(body).digest('hex').slice(0, 40)}`;
}

/** The AMQP basic properties of a received message that a copy of it keeps. */
export interface CopiedProperties extends NativeProperties {
  readonly contentEncoding?: unknown;
  readonly priority?: unknown;
  readonly timestamp?: unknown;
}

/**
 * The properties for a copy of a received message (`TransportOperation.copyOf`): its own, the
 * headers table included byte for byte (a `tidings.headers` entry that could not be read stays as
 * it came), with each header `to` sets anew as a table entry of its own and each it drops
 * deleted. Undefined when that cannot be done: a header to drop or change is packed or travels
 * as a native property. Left out: `expiration`, which would expire the copy in the error queue,
 * `user-id`, which the broker checks against the connection's user, and what the broker added.
 */
export function copiedAmqpProperties(
  original: CopiedProperties,
  from: Readonly<Record<string, string>>,
  to: Readonly<Record<string, string>>,
):
  | (Omit<ReturnType<typeof amqpPropertiesFor>, 'headers'> & {
      headers: Record<string, unknown>;
      contentEncoding?: string;
      priority?: number;
      timestamp?: number;
    })
  | undefined {
  const source: Record<string, unknown> = {};
  const headers = original.headers ?? {};
  for (const name of Object.keys(headers)) {
    if (name !== '__proto__' && !isBrokerHeader(name)) source[name] = headers[name];
  }
  const table = copyEntries(source, from, to, nativeHeaders);
  if (table === undefined) return undefined;
  const copy: NonNullable<ReturnType<typeof copiedAmqpProperties>> = { headers: table };
  if (typeof original.messageId === 'string') copy.messageId = original.messageId;
  if (typeof original.correlationId === 'string') copy.correlationId = original.correlationId;
  if (typeof original.replyTo === 'string') copy.replyTo = original.replyTo;
  if (typeof original.contentType === 'string') copy.contentType = original.contentType;
  if (typeof original.type === 'string') copy.type = original.type;
  if (typeof original.appId === 'string') copy.appId = original.appId;
  if (typeof original.contentEncoding === 'string') copy.contentEncoding = original.contentEncoding;
  if (typeof original.priority === 'number') copy.priority = original.priority;
  if (typeof original.timestamp === 'number') copy.timestamp = original.timestamp;
  return copy;
}
