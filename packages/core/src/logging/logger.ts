/** Structured fields logged beside a message. Never put secrets here. */
export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const levelRank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

function safeJson(fields: LogFields): string {
  try {
    return JSON.stringify(fields);
  } catch {
    return '{"fields":"unserializable"}';
  }
}

/** Logs to the console at or above `level`. The default logger of an endpoint, at `info`. */
export function createConsoleLogger(level: LogLevel = 'info'): Logger {
  const rank = levelRank[level];
  const write =
    (at: Exclude<LogLevel, 'silent'>, sink: (...args: unknown[]) => void) =>
    (message: string, fields?: LogFields) => {
      if (levelRank[at] < rank) return;
      if (fields === undefined) sink(`[tidings] ${at} ${message}`);
      else sink(`[tidings] ${at} ${message} ${safeJson(fields)}`);
    };
  return {
    debug: write('debug', console.debug),
    info: write('info', console.info),
    warn: write('warn', console.warn),
    error: write('error', console.error),
  };
}

/** Discards everything: for tests and benchmarks. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
