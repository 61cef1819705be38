import { isDeepStrictEqual } from 'node:util';

/** A payload with every property optional, nested plain objects included. */
export type PartialPayload<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { readonly [K in keyof T]?: PartialPayload<T[K]> }
    : T;

/**
 * Chooses which requests a canned reply answers: a predicate on the payload, or a partial payload
 * (every property given must equal the request's; nested objects compare the same way, arrays and
 * other values must be deeply equal).
 */
export type PayloadMatcher<T> = ((payload: T) => boolean) | PartialPayload<T>;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function partialEqual(expected: unknown, actual: unknown): boolean {
  if (isPlainObject(expected)) {
    if (!isPlainObject(actual)) return false;
    return Object.keys(expected).every((key) =>
      Object.hasOwn(actual, key) ? partialEqual(expected[key], actual[key]) : false,
    );
  }
  return isDeepStrictEqual(expected, actual);
}

export function matchesPayload<T>(matcher: PayloadMatcher<T>, payload: T): boolean {
  if (typeof matcher === 'function') return (matcher as (payload: T) => boolean)(payload);
  return partialEqual(matcher, payload);
}

/** A payload as it reads in an error message: JSON, cut short. */
export function describePayload(payload: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(payload) ?? String(payload);
  } catch {
    text = String(payload);
  }
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
