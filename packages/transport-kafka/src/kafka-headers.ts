import {
  copyEntries,
  type IncomingTransportMessage,
  PACKED_HEADERS,
  packHeaders,
  type TransportOperation,
  unpackHeaders,
} from '@tidings/core/transport';
import type { IncomingRecord } from './kafka-client.js';

const NONE: ReadonlySet<string> = new Set();

/**
 * Bus headers to Kafka record headers: the `tidings.*` headers packed into one `tidings.headers`
 * record header, any other header as its own record header. kafkajs spends more on each record
 * header than on the bytes in it: ten headers cut its throughput by more than half (ADR 8).
 */
export function recordHeadersFor(
  headers: Readonly<Record<string, string>>,
): Record<string, string> {
  const { packed, other } = packHeaders(headers, NONE);
  if (packed !== undefined) other[PACKED_HEADERS] = packed;
  return other;
}

/** Record headers read back into bus headers, and why they cannot be where that is so. */
export interface ReadHeaders {
  readonly headers: Record<string, string>;
  readonly unreadableReason: string | undefined;
}

/**
 * Kafka record headers to bus headers: the packed `tidings.headers` unfolded, every other record
 * header as it is (a foreign producer may set `tidings.*` record headers one by one).
 */
export function headersFromRecord(record: Readonly<Record<string, string>>): ReadHeaders {
  const headers: Record<string, string> = {};
  for (const name in record) {
    if (name !== PACKED_HEADERS) headers[name] = record[name] as string;
  }
  const reason = unpackHeaders(record[PACKED_HEADERS], headers);
  return {
    headers,
    unreadableReason: reason === undefined ? undefined : `record header ${reason}`,
  };
}

/** The record behind each message this transport handed over, for copies of it. */
const received = new WeakMap<IncomingTransportMessage, IncomingRecord>();

/** Remembers the record a message was read from, for copies of it (error queue, audit). */
export function rememberRecord(message: IncomingTransportMessage, record: IncomingRecord): void {
  received.set(message, record);
}

/**
 * A copy's record headers (`TransportOperation.copyOf`): the received record's as they came, with
 * the headers the copy adds as record headers of their own. Undefined to send it afresh.
 */
export function copiedHeaders(operation: TransportOperation): Record<string, string> | undefined {
  const { copyOf } = operation;
  const record = copyOf === undefined ? undefined : received.get(copyOf);
  if (copyOf === undefined || record === undefined) return undefined;
  return copyEntries(record.headers, copyOf.headers, operation.message.headers);
}
