import { describe, expect, it } from 'vitest';
import {
  DELAY_LEVELS,
  delayRoutingKey,
  delaySeconds,
  delayTopology,
  deliveryPattern,
  firstDelayLevel,
  levelPattern,
  MAX_DELAY_SECONDS,
} from '../src/delay-levels.ts';

/** Follows a routing key through the level exchanges as the broker would: the sum of waits. */
function simulate(key: string, start: number): number {
  const words = key.split('.');
  let waited = 0;
  for (let level = start; level >= 0; level--) {
    if (words[DELAY_LEVELS - 1 - level] === '1') waited += 2 ** level;
  }
  return waited;
}

describe('delay levels', () => {
  it('rounds delays up to whole seconds, never early', () => {
    expect(delaySeconds(1)).toBe(1);
    expect(delaySeconds(1000)).toBe(1);
    expect(delaySeconds(1001)).toBe(2);
  });

  it('writes the delay in binary, highest level first, then the queue', () => {
    const key = delayRoutingKey(5, 'Sales.Orders');
    expect(key).toBe(`${'0.'.repeat(25)}1.0.1.Sales.Orders`);
    expect(firstDelayLevel(5)).toBe(2);
  });

  it('every delay up to the maximum adds up exactly from the first level', () => {
    for (const seconds of [1, 2, 3, 60, 3_599, 86_400, 7 * 86_400, MAX_DELAY_SECONDS]) {
      expect(simulate(delayRoutingKey(seconds, 'q'), firstDelayLevel(seconds))).toBe(seconds);
    }
  });

  it('binds each level on its own bit word and the delivery on exactly 28 words', () => {
    expect(levelPattern(DELAY_LEVELS - 1, 1)).toBe('1.#');
    expect(levelPattern(0, 0)).toBe(`${'*.'.repeat(27)}0.#`);
    expect(deliveryPattern('a.b')).toBe(`${'*.'.repeat(28)}a.b`);
    const plan = delayTopology();
    expect(plan.queues).toHaveLength(DELAY_LEVELS);
    expect(plan.queues[0]).toMatchObject({
      ttlMs: 1000,
      deadLetterExchange: 'tidings.delay-delivery',
    });
    expect(plan.queues[27]?.ttlMs).toBe(2 ** 27 * 1000);
  });
});
