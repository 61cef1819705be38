/**
 * Reading what a handler threw. It may be anything: an object whose getters throw, one without a
 * prototype (no `toString`), a Proxy whose every trap throws. Recording the failure must not fail
 * in turn, or the message could never reach the error queue: every read here is guarded.
 */

/** `value[key]`, or undefined when reading it throws. */
export function readProperty(value: unknown, key: PropertyKey): unknown {
  if (value === null || value === undefined) return undefined;
  try {
    return (value as Record<PropertyKey, unknown>)[key];
  } catch {
    return undefined;
  }
}

/** `value instanceof type`, false when that throws (a Proxy's `getPrototypeOf` trap). */
export function isInstanceOf<T>(
  value: unknown,
  type: abstract new (...args: never[]) => T,
): value is T {
  try {
    return value instanceof type;
  } catch {
    return false;
  }
}

/** A string property of the value, or undefined. */
export function readString(value: unknown, key: PropertyKey): string | undefined {
  const read = readProperty(value, key);
  return typeof read === 'string' ? read : undefined;
}

/** An Error's name, or the value's `typeof`. */
export function thrownTypeName(value: unknown): string {
  if (isInstanceOf(value, Error)) return readString(value, 'name') ?? 'Error';
  return typeof value;
}

/** An Error's message, or the value as text; a description when neither can be read. */
export function thrownMessage(value: unknown): string {
  if (isInstanceOf(value, Error)) {
    return readString(value, 'message') ?? `${thrownTypeName(value)} (its message cannot be read)`;
  }
  try {
    return String(value);
  } catch {
    return `a thrown ${typeof value} that cannot be turned into text`;
  }
}
