import { UsageError } from '@tidings/core';

/** The same check a real endpoint makes, so a test fails where production would. */
export function checkHeaders(headers: Readonly<Record<string, string>> | undefined): void {
  if (headers === undefined) return;
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith('tidings.')) {
      throw new UsageError(
        `Header '${name}' is reserved: names starting with 'tidings.' are set by Tidings.`,
      );
    }
    if (typeof value !== 'string') {
      throw new UsageError(`Header '${name}' must be a string, got ${typeof value}.`);
    }
  }
}
