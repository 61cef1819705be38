/**
 * The longest delay `setTimeout` honours: Node.js fires a longer one (2^31 ms, about 24.8 days,
 * or more) after 1 ms, with only a warning.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer set with `setLongTimeout`. */
export interface LongTimer {
  /** Cancels it; harmless after it fired. */
  clear(): void;
}

export interface LongTimerOptions {
  /** The timer does not keep the process alive (`timer.unref()`). @default false */
  readonly unref?: boolean;
}

/**
 * `setTimeout` for any delay: a delay longer than `MAX_TIMER_MS` runs as a chain of timers of at
 * most that length, so it fires when due instead of at once. Every timer whose delay comes from
 * an option or a caller goes through here.
 */
export function setLongTimeout(
  callback: () => void,
  delayMs: number,
  options: LongTimerOptions = {},
): LongTimer {
  let remaining = Math.max(0, delayMs);
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const step = Math.min(MAX_TIMER_MS, remaining);
    remaining -= step;
    timer = setTimeout(() => {
      timer = undefined;
      if (remaining > 0) arm();
      else callback();
    }, step);
    if (options.unref === true) timer.unref();
  };
  arm();
  return {
    clear() {
      clearTimeout(timer);
      timer = undefined;
      remaining = 0;
    },
  };
}
