import { messageSize } from '../endpoint/outgoing.js';
import { Headers, MAX_FAILURE_HEADER_LENGTH } from '../messages/headers.js';
import { errorMessage } from '../util.js';

const noBody = new Uint8Array(0);
const ELLIPSIS = '…';
const ELLIPSIS_BYTES = Buffer.byteLength(ELLIPSIS);
const utf8 = new TextEncoder();

/** The longest start of `value` that takes at most `bytes` in UTF-8, never half a character. */
function prefixWithin(value: string, bytes: number): string {
  if (bytes <= 0) return '';
  const { read } = utf8.encodeInto(value, new Uint8Array(bytes));
  return value.slice(0, read);
}

const cut = (value: string) =>
  value.length > MAX_FAILURE_HEADER_LENGTH
    ? `${value.slice(0, MAX_FAILURE_HEADER_LENGTH)}${ELLIPSIS}`
    : value;

/**
 * The headers that record why a message was moved to the error queue, in at most `room` bytes
 * (UTF-8, as `messageSize` counts them): near the size limit the stack is cut first, then the exception message,
 * since a copy too large for the error queue could never leave the input queue.
 */
export function failureHeaders(
  error: unknown,
  failedQueue: string,
  room = Number.POSITIVE_INFINITY,
): Record<string, string> {
  const headers: Record<string, string> = {
    [Headers.ExceptionType]: error instanceof Error ? error.name : typeof error,
    [Headers.ExceptionMessage]: cut(errorMessage(error)),
    [Headers.FailedQueue]: failedQueue,
    [Headers.TimeOfFailure]: new Date().toISOString(),
  };
  if (error instanceof Error && error.stack) headers[Headers.ExceptionStack] = cut(error.stack);
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') headers[Headers.ExceptionCode] = code;
  for (const name of [Headers.ExceptionStack, Headers.ExceptionMessage]) {
    const over = messageSize(headers, noBody) - room;
    if (!(over > 0)) break;
    const value = headers[name];
    if (value === undefined) continue;
    const kept = prefixWithin(value, Buffer.byteLength(value) - over - ELLIPSIS_BYTES);
    if (kept.length > 0) headers[name] = `${kept}${ELLIPSIS}`;
    else delete headers[name];
  }
  return headers;
}
