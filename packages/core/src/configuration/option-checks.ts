import { ConfigurationError } from '../errors.js';
import { MAX_TIMER_MS } from '../long-timer.js';

/**
 * The option's value when it is a whole number of at least `min` (1 unless given); otherwise a
 * ConfigurationError that names the option and the value it got. For endpoint, transport and
 * integration options alike, so every package words the error the same way.
 */
export function checkWholeNumber(name: string, value: unknown, min = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    const expected = min === 1 ? 'a positive whole number' : `a whole number of at least ${min}`;
    throw new ConfigurationError(`${name} must be ${expected}, got ${String(value)}.`);
  }
  return value;
}

/**
 * `checkWholeNumber` for an option that becomes one `setTimeout` (a poll interval, a timeout a
 * client waits out): refuses more than `MAX_TIMER_MS`, which Node.js would fire after 1 ms. Use
 * `setLongTimeout` instead where a longer wait makes sense.
 */
export function checkTimerMs(name: string, value: unknown, min = 1): number {
  const ms = checkWholeNumber(name, value, min);
  if (ms > MAX_TIMER_MS) {
    throw new ConfigurationError(
      `${name} must be at most ${MAX_TIMER_MS} ms (about 24.8 days), got ${ms}.`,
    );
  }
  return ms;
}
