import {
  ConfigurationError,
  DestinationNotFoundError,
  defineMessage,
  Headers,
  returnToSourceQueue,
  silentLogger,
  UsageError,
} from '@tidings/core';
import { PACKED_HEADERS } from '@tidings/core/transport';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createKafkaTransport } from '../src/index.ts';
import { publishRaw, readQueue, sleep, testWorld } from './helpers.ts';
import { brokers } from './kafka-test-options.ts';

const Step = defineMessage<{ key: string; n: number }>('kafka.Step');
const Noticed = defineMessage<{ n: number }>('kafka.Noticed');
const wait = { timeout: 30_000, interval: 50 };

describe('options', () => {
  it('refuses missing or malformed settings with ConfigurationError', () => {
    expect(() => createKafkaTransport({ brokers: [] })).toThrow(ConfigurationError);
    expect(() => createKafkaTransport({ brokers: ['no-port'] })).toThrow(ConfigurationError);
    // A timer between commits: Node.js would fire one this long at once.
    expect(() => createKafkaTransport({ brokers: brokers(), commitIntervalMs: 2 ** 31 })).toThrow(
      /commitIntervalMs must be at most/,
    );
    expect(() => createKafkaTransport({ brokers: brokers(), partitions: 0 })).toThrow(
      ConfigurationError,
    );
    expect(() =>
      createKafkaTransport({
        brokers: brokers(),
        heartbeatIntervalMs: 5_000,
        sessionTimeoutMs: 3_000,
      }),
    ).toThrow(/heartbeatIntervalMs/);
    expect(() => createKafkaTransport({ brokers: brokers(), replicationFactor: 0 })).toThrow(
      ConfigurationError,
    );
    expect(() => createKafkaTransport({ brokers: brokers(), instanceSessionTimeoutMs: 0 })).toThrow(
      /instanceSessionTimeoutMs/,
    );
    expect(() => createKafkaTransport({ brokers: brokers(), connectTimeoutMs: 2 ** 31 })).toThrow(
      /connectTimeoutMs must be at most/,
    );
  });

  it('names topics from queues and event types, with the prefixes, in Kafka-legal characters', () => {
    const transport = createKafkaTransport({ brokers: brokers(), topicPrefix: 'staging.' });
    expect(transport.queueTopic('Sales')).toBe('staging.Sales');
    expect(transport.queueTopic('Sales.web 1/a')).toMatch(/^staging\.Sales\.web_1_a-[0-9a-f]{8}$/);
    expect(transport.eventTopic('sales.OrderPlaced')).toBe('staging.event.sales.OrderPlaced');
    expect(() => transport.queueTopic('x'.repeat(300))).toThrow(ConfigurationError);
  });

  it('names that differ only where a character Kafka does not allow was replaced get topics of their own', () => {
    const transport = createKafkaTransport({ brokers: brokers() });
    expect(transport.eventTopic('sales_Placed')).toBe('event.sales_Placed');
    const escaped = transport.eventTopic('sales:Placed');
    expect(escaped).toMatch(/^event\.sales_Placed-[0-9a-f]{8}$/);
    expect(transport.eventTopic('sales:Placed')).toBe(escaped);
    expect(
      new Set(['sales:Placed', 'sales_Placed', 'sales-Placed'].map(transport.eventTopic)).size,
    ).toBe(3);
  });
});

describe('kafka transport', () => {
  let world: ReturnType<typeof testWorld>;
  beforeEach(() => {
    world = testWorld();
  });
  afterEach(async () => {
    await world.dispose();
  });

  it('a send to a queue nobody created fails with DestinationNotFoundError; a delayed send is refused', async () => {
    const connection = await world
      .transport()
      .openEndpoint(
        { endpointName: world.name('Raw'), errorQueue: world.errorQueue, subscriptions: [] },
        { logger: silentLogger },
      );
    const message = {
      messageId: 'm',
      headers: { [Headers.MessageId]: 'm' },
      body: Buffer.from('{}'),
    };
    await expect(
      connection.dispatch([
        { message, destination: { kind: 'queue', queue: world.name('Nobody') } },
      ]),
    ).rejects.toBeInstanceOf(DestinationNotFoundError);
    await expect(
      connection.dispatch([
        { message, destination: { kind: 'queue', queue: world.errorQueue }, delayMs: 1_000 },
      ]),
    ).rejects.toBeInstanceOf(UsageError);
    await connection.close();
  });

  it('a return pass goes on after a kept message came round: a message handed over later is returned too', async () => {
    // Each message fails its first attempt and succeeds once returned.
    const attempts = new Map<number, number>();
    const handled: number[] = [];
    const server = world.endpoint('Server', {
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
    });
    server.handle(Step, (step) => {
      const attempt = (attempts.get(step.n) ?? 0) + 1;
      attempts.set(step.n, attempt);
      if (attempt === 1) throw new Error(`not yet: ${step.n}`);
      handled.push(step.n);
    });
    await server.start();
    const sender = world.endpoint('Sender', {
      sendOnly: true,
      routes: { [Step.name]: world.name('Server') },
    });
    await sender.start();
    await sender.send(Step, { key: 'kept', n: 1 }, { messageId: world.name('kept') });
    await expect.poll(() => server.stats.movedToErrorQueue, wait).toBe(1);

    const kafka = new Kafka({
      clientId: 'tidings-tests-raw',
      brokers: brokers(),
      logLevel: logLevel.NOTHING,
    });
    const admin = kafka.admin();
    await admin.connect();
    const recordsInErrorTopic = async () =>
      (await admin.fetchTopicOffsets(world.errorQueue)).reduce((sum, p) => sum + Number(p.high), 0);
    try {
      const pass = returnToSourceQueue({
        transport: world.transport(),
        errorQueue: world.errorQueue,
        filter: (failed) => failed.messageId !== world.name('kept'),
        idleMs: 4_000,
      });
      // The kept message has been sent to the back and has come round (the second copy sent to
      // the back): in a partitioned topic that says nothing about the other partitions, which may
      // not have handed anything over yet. Then a message fails into the error topic, as such a
      // partition would hand one over late.
      await expect.poll(recordsInErrorTopic, wait).toBeGreaterThanOrEqual(3);
      await sender.send(Step, { key: 'late', n: 2 });
      expect(await pass).toEqual({ returned: 1, kept: 1 });
      await expect.poll(() => handled, wait).toEqual([2]);
    } finally {
      await admin.disconnect();
    }
  }, 90_000);

  it('whenReceiving resolves once every partition holding records has handed its first one over', async () => {
    const queue = world.name('Backlog');
    // The queue's topic (six partitions) exists before anything is sent to it.
    const transport = world.transport();
    const creating = await transport.openEndpoint(
      { endpointName: queue, inputQueue: queue, errorQueue: world.errorQueue, subscriptions: [] },
      { logger: silentLogger },
    );
    // Sixty keys: every one of the six partitions gets records (all but certainly).
    await creating.dispatch(
      Array.from({ length: 60 }, (_, n) => ({
        message: {
          messageId: `${queue}-${n}`,
          headers: { [Headers.MessageId]: `${queue}-${n}` },
          body: Buffer.from('{}'),
        },
        destination: { kind: 'queue' as const, queue },
      })),
    );
    await creating.close();
    const reader = await readQueue(world, queue, transport);
    await reader.connection.whenReceiving?.();
    // The group's join alone hands nothing over: a first record from each partition has come.
    expect(reader.messages.length).toBeGreaterThanOrEqual(6);
    await expect.poll(() => reader.messages.length, wait).toBe(60);
    await reader.close();
  });

  it('on the wire: bus headers packed in one record header, user headers their own, the key the message id or the ordering key', async () => {
    const server = world.endpoint('Server');
    server.handle(Step, () => {});
    await server.start();
    await server.stop();
    const client = world.endpoint('Client', {
      sendOnly: true,
      routes: { [Step.name]: world.name('Server') },
    });
    await client.start();
    await client.send(Step, { key: 'a', n: 1 }, { messageId: `${world.id}-m1` });
    await client.send(
      Step,
      { key: 'b', n: 2 },
      {
        messageId: `${world.id}-m2`,
        headers: { 'ordering-key': 'customer-7', 'x-tenant': 'acme' },
      },
    );

    const kafka = new Kafka({ clientId: 'raw', brokers: brokers(), logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: world.name('raw-reader'), maxWaitTimeInMs: 50 });
    const records: Array<{ key: string; headers: Record<string, string> }> = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [world.name('Server')], fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(message.headers ?? {})) {
            headers[name] = String(value);
          }
          records.push({ key: String(message.key), headers });
        },
      });
      await expect.poll(() => records.length, wait).toBe(2);
    } finally {
      await consumer.disconnect();
    }
    const byKey = new Map(records.map((r) => [r.key, r.headers]));
    const plain = byKey.get(`${world.id}-m1`);
    expect(Object.keys(plain ?? {})).toEqual([PACKED_HEADERS]);
    const packed = JSON.parse(plain?.[PACKED_HEADERS] ?? '{}');
    expect(packed).toMatchObject({
      'message-id': `${world.id}-m1`,
      'message-type': Step.name,
      'content-type': 'application/json',
      intent: 'send',
      'originating-endpoint': world.name('Client'),
    });
    // Equal to the message id, so left out; the receiver restores them.
    expect(packed['correlation-id']).toBeUndefined();
    expect(packed['conversation-id']).toBeUndefined();
    const keyed = byKey.get('customer-7');
    expect(keyed?.['x-tenant']).toBe('acme');
    expect(keyed?.['ordering-key']).toBe('customer-7');
    expect(JSON.parse(keyed?.[PACKED_HEADERS] ?? '{}')['message-id']).toBe(`${world.id}-m2`);
  });

  it('a partition whose buffer is full holds up only itself, not the other partitions its broker leads', async () => {
    const queue = world.name('Full');
    const connection = await world
      .transport()
      .openEndpoint(
        { endpointName: queue, inputQueue: queue, errorQueue: world.errorQueue, subscriptions: [] },
        { logger: silentLogger },
      );
    // Two ordering keys whose partitions have one leader: kafkajs fetches them together.
    const kafka = new Kafka({ brokers: brokers(), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const [metadata] = (await admin.fetchTopicMetadata({ topics: [queue] })).topics;
    await admin.disconnect();
    const partitionMetadata = metadata?.partitions ?? [];
    const byKey = Partitioners.DefaultPartitioner();
    const placeOf = (key: string) => {
      const partition = byKey({ topic: queue, partitionMetadata, message: { key, value: null } });
      return {
        partition,
        leader: partitionMetadata.find((p) => p.partitionId === partition)?.leader,
      };
    };
    const keys = Array.from({ length: 100 }, (_, n) => `key-${n}`);
    const sharing = (a: string, b: string) =>
      placeOf(a).partition !== placeOf(b).partition && placeOf(a).leader === placeOf(b).leader;
    const slow = keys.find((key) => keys.some((k) => sharing(key, k))) as string;
    const other = keys.find((key) => sharing(slow, key)) as string;
    expect(other).toBeDefined();

    let letGo: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    const handled: string[] = [];
    await connection.startReceiving({
      concurrency: 4,
      onMessage: async (message) => {
        if (message.messageId === 'slow-0') await gate;
        handled.push(message.messageId);
        return 'complete';
      },
    });
    await connection.whenReceiving?.();
    const send = (key: string, prefix: string, count: number) =>
      connection.dispatch(
        Array.from({ length: count }, (_, n) => ({
          message: {
            messageId: `${prefix}-${n}`,
            headers: { [Headers.MessageId]: `${prefix}-${n}`, 'ordering-key': key },
            body: Buffer.from('{}'),
          },
          destination: { kind: 'queue' as const, queue },
        })),
      );
    // More records behind the held one than its partition buffers (256): they all wait for it.
    await send(slow, 'slow', 300);
    await sleep(500);
    await send(other, 'other', 10);
    await expect.poll(() => handled.filter((id) => id.startsWith('other-')).length, wait).toBe(10);
    expect(handled.filter((id) => id.startsWith('slow-'))).toEqual([]);
    letGo();
    await expect.poll(() => handled.length, wait).toBe(310);
    await connection.stopReceiving();
    await connection.close();
  });

  it('records with one ordering key are handled in order while other keys run alongside', async () => {
    const byKey = new Map<string, number[]>();
    let active = 0;
    let peak = 0;
    const server = world.endpoint('Server', { concurrency: 16 });
    server.handle(Step, async (p) => {
      active++;
      peak = Math.max(peak, active);
      await sleep(Math.floor(Math.random() * 8));
      byKey.set(p.key, [...(byKey.get(p.key) ?? []), p.n]);
      active--;
    });
    await server.start();
    const client = world.endpoint('Client', { routes: { [Step.name]: world.name('Server') } });
    await client.start();
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    const sends = [];
    for (let n = 0; n < 40; n++) {
      for (const key of keys) {
        sends.push(client.send(Step, { key, n }, { headers: { 'ordering-key': key } }));
      }
    }
    await Promise.all(sends);
    await expect
      .poll(() => [...byKey.values()].reduce((sum, l) => sum + l.length, 0), wait)
      .toBe(240);
    for (const key of keys) {
      expect(byKey.get(key)).toEqual(Array.from({ length: 40 }, (_, n) => n));
    }
    expect(peak).toBeGreaterThan(1);
  });

  it('a slow record holds back only its own key: the rest of its partition keeps moving', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handled: string[] = [];
    const server = world.endpoint('Server', { concurrency: 8 });
    server.handle(Step, async (p) => {
      if (p.key === 'slow' && p.n === 0) await held;
      handled.push(`${p.key}:${p.n}`);
    });
    await server.start();
    const client = world.endpoint('Client', { routes: { [Step.name]: world.name('Server') } });
    await client.start();
    const slow = { headers: { 'ordering-key': 'slow' } };
    await client.send(Step, { key: 'slow', n: 0 }, slow);
    await client.send(Step, { key: 'slow', n: 1 }, slow);
    // Other keys, many of them on the slow record's partition (4 partitions on the mock).
    await Promise.all(Array.from({ length: 60 }, (_, n) => client.send(Step, { key: `k${n}`, n })));
    await expect.poll(() => handled.length, wait).toBe(60);
    expect(handled.some((h) => h.startsWith('slow:'))).toBe(false);
    release();
    await expect.poll(() => handled.length, wait).toBe(62);
    expect(handled.slice(-2)).toEqual(['slow:0', 'slow:1']);
  });

  it('events of types that differ only by : and _ reach only their own handlers', async () => {
    const Colon = defineMessage<{ n: number }>(`${world.id}:Placed`);
    const Underscore = defineMessage<{ n: number }>(`${world.id}_Placed`);
    const colon: number[] = [];
    const underscore: number[] = [];
    const first = world.endpoint('Colon');
    first.handle(Colon, (p) => void colon.push(p.n));
    await first.start();
    const second = world.endpoint('Underscore');
    second.handle(Underscore, (p) => void underscore.push(p.n));
    await second.start();
    const publisher = world.endpoint('Publisher', { sendOnly: true });
    await publisher.start();
    // One key: on a shared topic, each endpoint would meet the other's event before its own next.
    const oneKey = { headers: { 'ordering-key': 'k' } };
    await publisher.publish(Underscore, { n: 1 }, oneKey);
    await publisher.publish(Colon, { n: 2 }, oneKey);
    await publisher.publish(Underscore, { n: 3 }, oneKey);
    await publisher.publish(Colon, { n: 4 }, oneKey);
    await expect.poll(() => colon, wait).toEqual([2, 4]);
    await expect.poll(() => underscore, wait).toEqual([1, 3]);
    expect(first.stats.movedToErrorQueue + second.stats.movedToErrorQueue).toBe(0);
  });

  it('a subscription starts when first made and survives a restart', async () => {
    const got: number[] = [];
    const publisher = world.endpoint('Publisher', { sendOnly: true });
    await publisher.start();
    // Published before any subscriber existed: not for this endpoint.
    await publisher.publish(Noticed, { n: 0 });
    const first = world.endpoint('Subscriber', { instanceId: 'one' });
    first.handle(Noticed, (p) => void got.push(p.n));
    await first.start();
    // Published right after start, before the group has joined.
    await publisher.publish(Noticed, { n: 1 });
    await expect.poll(() => got, wait).toEqual([1]);
    await first.stop();
    // Published while no instance runs: waits for the subscription.
    await publisher.publish(Noticed, { n: 2 });
    const second = world.endpoint('Subscriber', { instanceId: 'two' });
    second.handle(Noticed, (p) => void got.push(p.n));
    await second.start();
    await expect.poll(() => got, wait).toEqual([1, 2]);
  });

  it('a new subscription anchored before another member joined starts from the group position, not past it', async () => {
    // A rolling deploy adding a subscription: an old member keeps the group busy, so where the
    // subscription starts cannot be recorded for the group at once; each new member notes it.
    const queue = world.name('Events');
    const type = `${world.id}.Anchored`;
    const topology = (subscriptions: string[]) => ({
      endpointName: queue,
      inputQueue: queue,
      errorQueue: world.errorQueue,
      subscriptions,
    });
    const open = (subscriptions: string[]) =>
      world.transport().openEndpoint(topology(subscriptions), { logger: silentLogger });
    const handled = new Set<string>();
    const old = await open([]);
    await old.startReceiving({ concurrency: 1, onMessage: async () => 'complete' });
    await old.whenReceiving?.();

    const first = await open([type]);
    const ids = Array.from({ length: 12 }, (_, i) => `e${i}`);
    for (const id of ids) await publishRaw(first, type, id);
    // Opened now, with no position recorded yet: its note of the start is past every event.
    const second = await open([type]);

    // The first new member joins and takes every event partition; it handles one event at a time
    // and holds the first until let go, so the others wait in its buffer.
    let letGo: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    let started = 0;
    await first.startReceiving({
      concurrency: 1,
      onMessage: async (message) => {
        started++;
        await gate;
        handled.add(message.messageId);
        return 'complete';
      },
    });
    await expect.poll(() => started, wait).toBe(1);
    // The second joins: half the event partitions move to it, with none of their events handled.
    await second.startReceiving({
      concurrency: 4,
      onMessage: async (message) => {
        handled.add(message.messageId);
        return 'complete';
      },
    });
    await second.whenReceiving?.();
    letGo();
    await expect.poll(() => [...handled].sort(), wait).toEqual([...ids].sort());
    for (const connection of [second, first, old]) {
      await connection.stopReceiving();
      await connection.close();
    }
  });

  it('subscribe and unsubscribe on a receiving connection', async () => {
    const queue = world.name('Raw');
    const { connection, messages: received } = await readQueue(world, queue);
    const type = `${world.id}.Changed`;
    await connection.subscribe(type);
    const publish = (id: string) => publishRaw(connection, type, id);
    await publish('after-subscribe');
    await expect.poll(() => received.map((m) => m.messageId), wait).toEqual(['after-subscribe']);
    expect(received[0]?.queue).toBe(queue);
    await connection.unsubscribe(type);
    await publish('after-unsubscribe');
    await sleep(1_500);
    expect(received.map((m) => m.messageId)).toEqual(['after-subscribe']);
    await connection.stopReceiving();
    await connection.close();
  });

  describe('subscription changes while receiving', () => {
    /** Publishes one event of each type and waits until the connection has received both. */
    const expectBothReceived = async (
      reader: Awaited<ReturnType<typeof readQueue>>,
      first: string,
      second: string,
    ) => {
      await publishRaw(reader.connection, first, 'first');
      await publishRaw(reader.connection, second, 'second');
      await expect
        .poll(() => reader.messages.map((m) => m.messageId).sort(), wait)
        .toEqual(['first', 'second']);
    };

    /**
     * A consumer left running in the queue's group would hold some of its partitions: a new reader
     * gets every record sent to the queue only when the closed connection left nothing behind.
     */
    const expectNoConsumerLeftIn = async (queue: string) => {
      const sender = await world
        .transport()
        .openEndpoint(
          { endpointName: world.name('Sender'), errorQueue: world.errorQueue, subscriptions: [] },
          { logger: silentLogger },
        );
      // No ordering key: spread round-robin over every partition.
      const ids = Array.from({ length: 24 }, (_, n) => `${world.id}-after-close-${n}`);
      await sender.dispatch(
        ids.map((id) => ({
          message: { messageId: id, headers: { [Headers.MessageId]: id }, body: Buffer.from('{}') },
          destination: { kind: 'queue', queue },
        })),
      );
      await sender.close();
      const reader = await readQueue(world, queue);
      try {
        await expect
          .poll(() => reader.messages.map((m) => m.messageId).sort(), wait)
          .toEqual([...ids].sort());
      } finally {
        await reader.close();
      }
    };

    it('two subscribes at once both take effect, and close leaves no consumer running', async () => {
      const queue = world.name('Raw');
      const reader = await readQueue(world, queue);
      const { connection } = reader;
      const first = `${world.id}.First`;
      const second = `${world.id}.Second`;
      await Promise.all([connection.subscribe(first), connection.subscribe(second)]);
      await expectBothReceived(reader, first, second);
      await connection.stopReceiving();
      await connection.close();
      await expectNoConsumerLeftIn(queue);
    });

    it('subscribes one right after another: each receives what is published after it', async () => {
      const reader = await readQueue(world, world.name('Raw'));
      const { connection } = reader;
      const first = `${world.id}.First`;
      const second = `${world.id}.Second`;
      // The second stops the consumer the first started as soon as that one has joined its group.
      await connection.subscribe(first);
      await connection.subscribe(second);
      await expectBothReceived(reader, first, second);
      await connection.stopReceiving();
      await connection.close();
    });

    it('a close while an unsubscribe restarts the consumer leaves no consumer running', async () => {
      const queue = world.name('Raw');
      const { connection } = await readQueue(world, queue);
      const type = `${world.id}.Changed`;
      await connection.subscribe(type);
      await Promise.all([connection.unsubscribe(type), connection.close()]);
      await expectNoConsumerLeftIn(queue);
    });
  });
});
