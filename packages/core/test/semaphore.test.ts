import { describe, expect, it } from 'vitest';
import { Semaphore } from '../src/index.ts';

describe('Semaphore', () => {
  it('hands out its permits without waiting, then queues acquirers in order', async () => {
    const slots = new Semaphore(2);
    expect(slots.tryAcquire()).toBe(true);
    await slots.acquire();
    expect(slots.tryAcquire()).toBe(false);
    const order: string[] = [];
    const first = slots.acquire().then(() => order.push('first'));
    const second = slots.acquire().then(() => order.push('second'));
    await Promise.resolve();
    expect(order).toEqual([]);
    // A release passes the permit to the longest waiter instead of freeing it.
    slots.release();
    await first;
    expect(slots.tryAcquire()).toBe(false);
    slots.release();
    await second;
    expect(order).toEqual(['first', 'second']);
    slots.release();
    slots.release();
    expect(slots.tryAcquire()).toBe(true);
    expect(slots.tryAcquire()).toBe(true);
    expect(slots.tryAcquire()).toBe(false);
  });
});
