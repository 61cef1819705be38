import { Headers, MAX_FAILURE_HEADER_LENGTH } from '../messages/headers.js';
import { errorMessage } from '../util.js';

const cut = (value: string) =>
  value.length > MAX_FAILURE_HEADER_LENGTH
    ? `${value.slice(0, MAX_FAILURE_HEADER_LENGTH)}…`
    : value;

/** The headers that record why a message was moved to the error queue. */
export function failureHeaders(error: unknown, failedQueue: string): Record<string, string> {
  const headers: Record<string, string> = {
    [Headers.ExceptionType]: error instanceof Error ? error.name : typeof error,
    [Headers.ExceptionMessage]: cut(errorMessage(error)),
    [Headers.FailedQueue]: failedQueue,
    [Headers.TimeOfFailure]: new Date().toISOString(),
  };
  if (error instanceof Error && error.stack) headers[Headers.ExceptionStack] = cut(error.stack);
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') headers[Headers.ExceptionCode] = code;
  return headers;
}
