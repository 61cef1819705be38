import { ConfigurationError } from '../errors.js';

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
