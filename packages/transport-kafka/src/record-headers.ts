import { PACKED_HEADERS, packHeaders, unpackHeaders } from '@tidings/core/transport';

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
