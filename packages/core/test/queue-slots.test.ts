import { describe, expect, it } from 'vitest';
import { QueueSlots } from '../src/transport/index.ts';

describe('QueueSlots', () => {
  it('hands out its slots without waiting, then queues acquirers in order', async () => {
    const slots = new QueueSlots(2);
    expect(slots.tryAcquire()).toBe(true);
    await slots.acquire();
    expect(slots.tryAcquire()).toBe(false);
    const order: string[] = [];
    const first = slots.acquire().then(() => order.push('first'));
    const second = slots.acquire().then(() => order.push('second'));
    await Promise.resolve();
    expect(order).toEqual([]);
    expect(slots.queued).toBe(2);
    // A release passes the slot to the longest waiter instead of freeing it.
    slots.release();
    await first;
    expect(slots.tryAcquire()).toBe(false);
    slots.release();
    await second;
    expect(order).toEqual(['first', 'second']);
    slots.release();
    slots.release();
    expect(slots.active).toBe(0);
    expect(slots.tryAcquire()).toBe(true);
    expect(slots.tryAcquire()).toBe(true);
    expect(slots.tryAcquire()).toBe(false);
  });

  it('runs work synchronously while a slot is free and in arrival order after', () => {
    const slots = new QueueSlots(1);
    const ran: number[] = [];
    slots.whenFree(() => ran.push(1));
    expect(ran).toEqual([1]);
    slots.whenFree(() => ran.push(2));
    slots.whenFree(() => ran.push(3));
    expect(ran).toEqual([1]);
    expect(slots.queued).toBe(2);
    slots.release();
    expect(ran).toEqual([1, 2]);
    expect(slots.active).toBe(1);
  });

  it('drops waiting work, which never runs, and keeps the slots it holds', () => {
    const slots = new QueueSlots(1);
    const ran: number[] = [];
    slots.whenFree(() => ran.push(1));
    slots.whenFree(() => ran.push(2));
    expect(slots.dropWaiting()).toBe(1);
    slots.release();
    expect(ran).toEqual([1]);
    expect(slots.active).toBe(0);
  });
});
