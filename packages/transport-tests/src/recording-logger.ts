import type { LogFields, Logger } from '@tidings/core';

/**
 * A logger that keeps every line as text (`level message fields`), for assertions: that a
 * warning was or was not logged, that no line holds a secret.
 */
export function recordingLogger(): Logger & { readonly lines: string[] } {
  const lines: string[] = [];
  const write = (level: string) => (message: string, fields?: LogFields) => {
    lines.push(`${level} ${message} ${fields === undefined ? '' : JSON.stringify(fields)}`);
  };
  return {
    lines,
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
  };
}
