import { messageSize } from '../endpoint/outgoing.js';
import { Headers, MAX_FAILURE_HEADER_LENGTH } from '../messages/headers.js';
import { readString, thrownMessage, thrownTypeName } from '../thrown-value.js';
import { headerSize } from '../transport/packed-headers.js';

const noBody = new Uint8Array(0);
const ELLIPSIS = '…';

/** Cut in this order until the headers fit: the longest and least needed first. */
const CUT_ORDER = [
  Headers.ExceptionStack,
  Headers.ExceptionMessage,
  Headers.ExceptionCode,
  Headers.ExceptionType,
] as const;

/** True when `index` falls between the two halves of a surrogate pair in `value`. */
function splitsPair(value: string, index: number): boolean {
  if (index <= 0 || index >= value.length) return false;
  const before = value.charCodeAt(index - 1);
  const after = value.charCodeAt(index);
  return before >= 0xd800 && before <= 0xdbff && after >= 0xdc00 && after <= 0xdfff;
}

/** The first `length` units of `value`, one fewer where that would split a surrogate pair. */
export function sliceWhole(value: string, length: number): string {
  if (length >= value.length) return value;
  return value.slice(0, splitsPair(value, length) ? length - 1 : length);
}

/**
 * The longest start of `value`, whole characters only, that `fits` (which must hold for every
 * shorter start of one it holds for); empty when none does. A binary search: `fits` measures the
 * start as it would be written, escapes and all, and this runs only when a message fails.
 */
function longestPrefix(value: string, fits: (prefix: string) => boolean): string {
  // Both are indexes no pair straddles: `lo` fits (or is 0), nothing longer than `hi` does.
  let lo = 0;
  let hi = value.length;
  while (lo < hi) {
    let mid = Math.ceil((lo + hi) / 2);
    // hi is whole, so mid + 1 <= hi here.
    if (splitsPair(value, mid)) mid++;
    if (fits(value.slice(0, mid))) {
      lo = mid;
    } else {
      hi = mid - 1;
      if (splitsPair(value, hi)) hi--;
    }
  }
  return value.slice(0, lo);
}

const cut = (value: string) =>
  value.length > MAX_FAILURE_HEADER_LENGTH
    ? `${sliceWhole(value, MAX_FAILURE_HEADER_LENGTH)}${ELLIPSIS}`
    : value;

/**
 * The headers that record why a message was moved to the error queue, in at most `room` bytes
 * (as `messageSize` counts them: UTF-8, bus headers as the packed JSON broker transports write).
 * Near the size limit the stack is cut first, then the exception message, code and type, since
 * a copy too large for the error queue could never leave the input queue. The failed queue and
 * the time stay: they are short.
 */
export function failureHeaders(
  error: unknown,
  failedQueue: string,
  room = Number.POSITIVE_INFINITY,
): Record<string, string> {
  const headers: Record<string, string> = {
    [Headers.ExceptionType]: cut(thrownTypeName(error)),
    [Headers.ExceptionMessage]: cut(thrownMessage(error)),
    [Headers.FailedQueue]: failedQueue,
    [Headers.TimeOfFailure]: new Date().toISOString(),
  };
  // Read defensively: a getter that throws here would keep the message out of the error queue.
  const stack = readString(error, 'stack');
  if (stack) headers[Headers.ExceptionStack] = cut(stack);
  const code = readString(error, 'code');
  if (code !== undefined) headers[Headers.ExceptionCode] = cut(code);
  for (const name of CUT_ORDER) {
    const value = headers[name];
    if (value === undefined) continue;
    const size = messageSize(headers, noBody);
    if (!(size > room)) break;
    // What this header may take once the others are counted.
    const budget = room - (size - headerSize(name, value));
    const kept = longestPrefix(value, (start) => headerSize(name, `${start}${ELLIPSIS}`) <= budget);
    if (kept.length > 0) headers[name] = `${kept}${ELLIPSIS}`;
    else delete headers[name];
  }
  return headers;
}
