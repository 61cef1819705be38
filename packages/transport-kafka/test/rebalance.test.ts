import { Headers, silentLogger } from '@tidings/core';
import type {
  IncomingTransportMessage,
  MessageOutcome,
  TransportEndpoint,
} from '@tidings/core/transport';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KafkaTransportOptions } from '../src/index.ts';
import { publishRaw, testWorld } from './helpers.ts';

const wait = { timeout: 45_000, interval: 50 };

/**
 * A handler that holds every record with an ordering key until let go, counting how many records
 * of each key run at once; records without one (probes) it handles at once.
 */
function gatedByKey() {
  let letGo: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    letGo = resolve;
  });
  const running = new Map<string, number>();
  const handled: string[] = [];
  let mostAtOnce = 0;
  return {
    handled,
    letGo,
    /** Keys with a record started so far. */
    keysStarted: () => running.size,
    mostAtOnce: () => mostAtOnce,
    onMessage: async (message: IncomingTransportMessage): Promise<MessageOutcome> => {
      const key = message.headers['ordering-key'];
      if (key !== undefined) {
        const now = (running.get(key) ?? 0) + 1;
        running.set(key, now);
        mostAtOnce = Math.max(mostAtOnce, now);
        await gate;
        running.set(key, (running.get(key) ?? 1) - 1);
      }
      handled.push(message.messageId);
      return 'complete';
    },
  };
}

/** Sends `<key>/0` and `<key>/1` for each key, with the key as ordering key; returns the ids. */
async function sendTwoPerKey(connection: TransportEndpoint, queue: string, keys: string[]) {
  const ids = keys.flatMap((key) => [`${key}/0`, `${key}/1`]);
  await connection.dispatch(
    ids.map((id) => ({
      message: {
        messageId: id,
        headers: { [Headers.MessageId]: id, 'ordering-key': id.split('/')[0] as string },
        body: Buffer.from('{}'),
      },
      destination: { kind: 'queue' as const, queue },
    })),
  );
  return ids;
}

/**
 * Sends records without an ordering key, keyed by their ids: enough that every partition (six)
 * gets some, all but certainly (one of them misses all 60 about once in 10,000 runs).
 */
async function sendProbes(connection: TransportEndpoint, queue: string, count: number) {
  const ids = Array.from({ length: count }, (_, n) => `probe-${n}`);
  await connection.dispatch(
    ids.map((id) => ({
      message: { messageId: id, headers: { [Headers.MessageId]: id }, body: Buffer.from('{}') },
      destination: { kind: 'queue' as const, queue },
    })),
  );
  return ids;
}

/**
 * Every id handled exactly once: the held records are completed by the run that held them, and
 * the copies fetched again after the partition came back are skipped.
 */
function expectEachOnce(handled: readonly string[], ids: readonly string[]) {
  expect(new Set(handled).size).toBe(handled.length);
  expect(ids.filter((id) => !handled.includes(id))).toEqual([]);
}

/** A record handled again comes before the next of its key is first handled. */
function expectInOrderPerKey(handled: readonly string[], keys: readonly string[]) {
  for (const key of keys) {
    const order = handled.filter((id) => id.startsWith(`${key}/`));
    expect(order.lastIndexOf(`${key}/0`)).toBeLessThan(order.indexOf(`${key}/1`));
  }
}

describe('rebalances', () => {
  let world: ReturnType<typeof testWorld>;
  beforeEach(() => {
    world = testWorld();
  });
  afterEach(async () => {
    await world.dispose();
  });

  const open = (queue: string, options: Partial<KafkaTransportOptions> = {}) =>
    world
      .transport(options)
      .openEndpoint(
        { endpointName: queue, inputQueue: queue, errorQueue: world.errorQueue, subscriptions: [] },
        { logger: silentLogger },
      );

  it('a partition taken away and given back while its records still run: no key runs twice at once, nothing is lost', async () => {
    const queue = world.name('Orders');
    const handler = gatedByKey();
    const first = await open(queue);
    await first.startReceiving({ concurrency: 64, onMessage: handler.onMessage });
    await first.whenReceiving?.();

    // 36 keys: every partition (six) almost always gets some (all but once in about 120 runs).
    const keys = Array.from({ length: 36 }, (_, n) => `key-${n}`);
    const ids = await sendTwoPerKey(first, queue, keys);
    // The first record of every key runs (held); the second waits for it.
    await expect.poll(handler.keysStarted, wait).toBe(keys.length);

    // A second member joins: half the partitions go to it, with their records still running in
    // the first. It commits nothing (it leaves every record for later), and leaves again.
    const second = await open(queue);
    let seenBySecond = 0;
    await second.startReceiving({
      concurrency: 4,
      onMessage: async () => {
        seenBySecond++;
        return 'abandon';
      },
    });
    await second.whenReceiving?.();
    await expect.poll(() => seenBySecond, wait).toBeGreaterThan(0);
    await second.stopReceiving();
    await second.close();

    // The first member has every partition again once it has handled a record sent to each: it
    // has read them from the committed position, the held records again among them.
    const probes = await sendProbes(first, queue, 60);
    await expect.poll(() => probes.every((id) => handler.handled.includes(id)), wait).toBe(true);
    expect(handler.mostAtOnce()).toBe(1);

    handler.letGo();
    await expect.poll(() => ids.every((id) => handler.handled.includes(id)), wait).toBe(true);
    expect(handler.mostAtOnce()).toBe(1);
    expectInOrderPerKey(handler.handled, keys);
    // Stopping waits for every record taken in: a copy handled again would be among them.
    await first.stopReceiving();
    expectEachOnce(handler.handled, [...ids, ...probes]);
    await first.close();
  });

  it('a subscription change while records run past the drain timeout: the new consumer runs no key twice at once', async () => {
    const queue = world.name('Orders');
    const handler = gatedByKey();
    const connection = await open(queue, { drainTimeoutMs: 1_000 });
    await connection.startReceiving({ concurrency: 16, onMessage: handler.onMessage });
    await connection.whenReceiving?.();
    const keys = ['a', 'b', 'c'];
    const ids = await sendTwoPerKey(connection, queue, keys);
    await expect.poll(handler.keysStarted, wait).toBe(keys.length);

    // The old consumer waits for its records up to `drainTimeoutMs`, then stops with them still
    // running; the new one reads from the committed position, the held records again among them.
    const type = `${world.id}.Changed`;
    await connection.subscribe(type);
    await publishRaw(connection, type, 'event');
    const probes = await sendProbes(connection, queue, 60);
    await expect
      .poll(() => [...probes, 'event'].every((id) => handler.handled.includes(id)), wait)
      .toBe(true);
    expect(handler.mostAtOnce()).toBe(1);

    handler.letGo();
    await expect.poll(() => ids.every((id) => handler.handled.includes(id)), wait).toBe(true);
    expect(handler.mostAtOnce()).toBe(1);
    expectInOrderPerKey(handler.handled, keys);
    await connection.stopReceiving();
    expectEachOnce(handler.handled, [...ids, ...probes, 'event']);
    await connection.close();
  });
});
