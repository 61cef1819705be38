import { describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  checkWholeNumber,
  createEndpoint,
  createInMemoryTransport,
} from '../src/index.ts';

describe('checkWholeNumber', () => {
  it('returns a whole number at or above the minimum', () => {
    expect(checkWholeNumber('concurrency', 1)).toBe(1);
    expect(checkWholeNumber('retries', 0, 0)).toBe(0);
    expect(checkWholeNumber('replicas', 3, 2)).toBe(3);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '5', undefined, null])(
    'refuses %s with a ConfigurationError naming the option and the value',
    (value) => {
      const check = () => checkWholeNumber('leaseMs', value);
      expect(check).toThrow(ConfigurationError);
      expect(check).toThrow(`leaseMs must be a positive whole number, got ${String(value)}.`);
    },
  );

  it('words a minimum other than one', () => {
    expect(() => checkWholeNumber('retries', -1, 0)).toThrow(
      'retries must be a whole number of at least 0, got -1.',
    );
  });

  it('is what endpoint and in-memory transport options go through', () => {
    expect(() => createInMemoryTransport({ maxMessageSizeBytes: 0 })).toThrow(
      'maxMessageSizeBytes must be a positive whole number, got 0.',
    );
    expect(() =>
      createEndpoint({ name: 'Sales', transport: createInMemoryTransport(), concurrency: 2.5 }),
    ).toThrow('concurrency must be a positive whole number, got 2.5.');
  });
});
