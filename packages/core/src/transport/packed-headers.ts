import { Headers } from '../messages/headers.js';

/**
 * The name of the one entry (record header, application property) that carries a message's bus
 * headers packed as a JSON object, on transports whose client pays per entry (ADR 8). Its keys
 * are the header names without the `tidings.` prefix: `{"message-type":"sales.PlaceOrder",...}`.
 */
export const PACKED_HEADERS = 'tidings.headers';

const BUS_PREFIX = 'tidings.';

/** A value JSON writes as it is between quotes: printable ASCII without `"` or `\\`. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/**
 * The bytes one header takes as the transports count it: its name and value in UTF-8, and a bus
 * (`tidings.`) header's value as `packHeaders` writes it in the packed JSON entry, quotes left out,
 * where a control character or a lone surrogate is `\uXXXX` (six bytes for one unit) and `"` two.
 */
export function headerSize(name: string, value: string): number {
  const valueSize = !name.startsWith(BUS_PREFIX)
    ? Buffer.byteLength(value)
    : PLAIN.test(value)
      ? value.length
      : Buffer.byteLength(JSON.stringify(value)) - 2;
  return Buffer.byteLength(name) + valueSize;
}

/** Packed keys (JSON, quoted) by header name, so sending does not build the same strings again. */
const packedKeys = new Map<string, string>();
const packedKey = (name: string): string => {
  let key = packedKeys.get(name);
  if (key === undefined) {
    key = JSON.stringify(name.slice(BUS_PREFIX.length));
    if (packedKeys.size < 256) packedKeys.set(name, key);
  }
  return key;
};

/** Full header names by packed key, so receiving does not build the same strings again. */
const fullNames = new Map<string, string>();
const fullName = (key: string): string => {
  let name = fullNames.get(key);
  if (name === undefined) {
    name = BUS_PREFIX + key;
    // Bounded: keys come from the wire.
    if (fullNames.size < 256) fullNames.set(key, name);
  }
  return name;
};

/** Left out of the packed entry when equal to the message id, and restored from it on receipt. */
const SAME_AS_MESSAGE_ID: readonly string[] = [Headers.CorrelationId, Headers.ConversationId];

/**
 * Splits outgoing headers into the bus headers packed as one JSON object (`packed`, undefined
 * when there are none) and the other headers (`other`, each its own entry). Bus headers in
 * `native` are left out: the transport carries them in native properties. Correlation and
 * conversation ids equal to the message id are left out too; `unpackHeaders` restores them.
 */
export function packHeaders(
  headers: Readonly<Record<string, string>>,
  native: ReadonlySet<string>,
): { packed: string | undefined; other: Record<string, string> } {
  const other: Record<string, string> = {};
  let packed = '';
  const messageId = headers[Headers.MessageId];
  for (const name in headers) {
    const value = headers[name] as string;
    if (!name.startsWith(BUS_PREFIX)) {
      other[name] = value;
    } else if (!native.has(name) && !(value === messageId && SAME_AS_MESSAGE_ID.includes(name))) {
      // Written by hand: a message's headers go out once per message, and this is about twice
      // as fast as building an object for JSON.stringify. Names are ours; values are escaped.
      packed += `${packed === '' ? '{' : ','}${packedKey(name)}:${
        PLAIN.test(value) ? `"${value}"` : JSON.stringify(value)
      }`;
    }
  }
  return { packed: packed === '' ? undefined : `${packed}}`, other };
}

/**
 * Unfolds a packed entry into `headers`, which holds what arrived as separate entries and native
 * properties: those win where both name a header (a foreign sender may set either). Restores
 * correlation and conversation ids left out by `packHeaders`. Returns why the entry cannot be
 * read (not a JSON object of strings), or undefined when it could.
 */
export function unpackHeaders(
  packed: string | undefined,
  headers: Record<string, string>,
): string | undefined {
  if (packed === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(packed);
  } catch {
    return `'${PACKED_HEADERS}' is not valid JSON.`;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return `'${PACKED_HEADERS}' must be a JSON object of strings.`;
  }
  // Own keys only, each prefixed: a `__proto__` key in the JSON cannot reach a prototype.
  const entries = parsed as Record<string, unknown>;
  for (const key in entries) {
    if (!Object.hasOwn(entries, key)) continue;
    const value = entries[key];
    if (typeof value !== 'string') {
      return `'${PACKED_HEADERS}' has a non-string value for '${key.slice(0, 100)}'.`;
    }
    const name = fullName(key);
    if (headers[name] === undefined) headers[name] = value;
  }
  const messageId = headers[Headers.MessageId];
  if (messageId !== undefined) {
    for (const name of SAME_AS_MESSAGE_ID) headers[name] ??= messageId;
  }
  return undefined;
}

const NO_NAMES: ReadonlySet<string> = new Set();

/**
 * The native entries (record headers, application properties, a headers table) for a copy of a
 * received message (`TransportOperation.copyOf`): `entries` as they came, a packed entry that
 * could not be read included, with each header of `to` that `from` lacks or holds with another
 * value as an entry of its own, and the entries of the headers `to` drops deleted. Undefined when
 * that cannot be done: a header to drop or change is packed, or travels in `native` properties.
 */
export function copyEntries<T>(
  entries: Readonly<Record<string, T>>,
  from: Readonly<Record<string, string>>,
  to: Readonly<Record<string, string>>,
  native: ReadonlySet<string> = NO_NAMES,
): Record<string, T | string> | undefined {
  const copy: Record<string, T | string> = {};
  for (const name of Object.keys(entries)) {
    if (name !== '__proto__') copy[name] = entries[name] as T;
  }
  for (const name in from) {
    if (Object.hasOwn(to, name)) continue;
    if (!Object.hasOwn(copy, name) || name === PACKED_HEADERS || native.has(name)) return undefined;
    delete copy[name];
  }
  for (const name in to) {
    const value = to[name] as string;
    if (from[name] === value) continue;
    if (name === PACKED_HEADERS || native.has(name)) return undefined;
    copy[name] = value;
  }
  return copy;
}
