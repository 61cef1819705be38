import { execFileSync } from 'node:child_process';
import { defineMessage, Headers, TransportUnavailableError } from '@tidings/core';
import { PACKED_HEADERS } from '@tidings/core/transport';
import { Kafka, logLevel } from 'kafkajs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { publishRaw, readQueue, sleep, testWorld } from './helpers.ts';
import { brokers } from './kafka-test-options.ts';
import { proxyCluster } from './tcp-proxy.ts';

const Work = defineMessage<{ n: number }>('faults.Work');
const Ping = defineMessage<{ n: number }>('faults.Ping');
const Pong = defineMessage<{ n: number }>('faults.Pong');
const wait = { timeout: 45_000, interval: 50 };

describe('faults', () => {
  let world: ReturnType<typeof testWorld>;
  const cleanups: Array<() => Promise<void>> = [];
  beforeEach(() => {
    world = testWorld();
  });
  afterEach(async () => {
    await world.dispose();
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  it('connections cut during a stream and during in-flight requests: nothing is lost', async () => {
    const proxy = await proxyCluster(brokers());
    cleanups.push(() => proxy.close());
    const viaProxy = () =>
      world.transport({ brokers: proxy.brokers, mapBrokerAddress: proxy.mapBrokerAddress });
    const seen = new Set<number>();
    const server = world.endpoint('Server', { transport: viaProxy(), concurrency: 32 });
    server.handle(Work, (p) => void seen.add(p.n));
    server.handle(Ping, async (p, ctx) => ctx.reply(Pong, { n: p.n }));
    await server.start();
    const client = world.endpoint('Client', {
      transport: viaProxy(),
      routes: { [Work.name]: world.name('Server'), [Ping.name]: world.name('Server') },
      requestTimeoutMs: 50_000,
    });
    await client.start();

    // A stream of sends with cuts in the middle of it.
    const total = 600;
    let cutsDuringStream = 0;
    for (let n = 0; n < total; n += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, i) => client.send(Work, { n: n + i })));
      if (n === 200 || n === 400) cutsDuringStream += proxy.cutAll();
    }
    await expect.poll(() => seen.size, wait).toBe(total);
    expect(cutsDuringStream).toBeGreaterThan(0);

    // Requests in flight while every connection is cut, twice.
    const requests = Array.from({ length: 200 }, (_, n) =>
      client.request(Ping, { n }, { expect: Pong }),
    );
    await sleep(20);
    const cutsDuringRequests = proxy.cutAll();
    await sleep(300);
    proxy.cutAll();
    const replies = await Promise.all(requests);
    expect(cutsDuringRequests).toBeGreaterThan(0);
    expect(replies.map((r) => r.n)).toEqual(Array.from({ length: 200 }, (_, n) => n));
    expect(client.stats.pendingRequests).toBe(0);
  });

  it('a handler that always throws: the record goes to the error topic with failure headers and the partition keeps moving', async () => {
    const errors = await readQueue(world, world.errorQueue);
    cleanups.push(errors.close);
    const handled: number[] = [];
    let attempts = 0;
    const server = world.endpoint('Server', {
      recoverability: { immediateRetries: 2, delayedRetries: { count: 0, delayMs: 0 } },
    });
    server.handle(Work, (p) => {
      if (p.n === 0) {
        attempts++;
        throw new RangeError('poison');
      }
      handled.push(p.n);
    });
    await server.start();
    const client = world.endpoint('Client', { routes: { [Work.name]: world.name('Server') } });
    await client.start();
    // One ordering key: every record lands on one partition, in order, the poison one first.
    const sameKey = { headers: { 'ordering-key': 'one-partition' } };
    await client.send(Work, { n: 0 }, { ...sameKey, messageId: `${world.id}-poison` });
    for (let n = 1; n <= 20; n++) await client.send(Work, { n }, sameKey);

    await expect.poll(() => handled.length, wait).toBe(20);
    expect(handled).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    await expect.poll(() => errors.messages.length, wait).toBe(1);
    expect(attempts).toBe(3);
    const h = errors.messages[0]?.headers ?? {};
    expect(h[Headers.MessageId]).toBe(`${world.id}-poison`);
    expect(h[Headers.ExceptionType]).toBe('RangeError');
    expect(h[Headers.ExceptionMessage]).toBe('poison');
    expect(h[Headers.FailedQueue]).toBe(world.name('Server'));
    expect(server.stats.movedToErrorQueue).toBe(1);
  });

  it('malformed records produced with raw kafkajs go to the error topic; the endpoint keeps going', async () => {
    const errors = await readQueue(world, world.errorQueue);
    cleanups.push(errors.close);
    const handled: number[] = [];
    const server = world.endpoint('Server');
    server.handle(Work, (p) => void handled.push(p.n));
    await server.start();

    const kafka = new Kafka({ clientId: 'raw', brokers: brokers(), logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    const topic = world.name('Server');
    const typed = { [Headers.MessageType]: Work.name, [Headers.ContentType]: 'application/json' };
    await producer.send({
      topic,
      acks: -1,
      messages: [
        // No headers at all, not even a message id.
        { key: 'a', value: 'just some bytes' },
        // A tombstone: no value.
        { key: 'b', value: null, headers: { ...typed, [Headers.MessageId]: `${world.id}-null` } },
        // Not JSON.
        {
          key: 'c',
          value: '{"n": ',
          headers: { ...typed, [Headers.MessageId]: `${world.id}-bad` },
        },
        // Binary garbage in a header value and body.
        {
          key: 'd',
          value: Buffer.from([0xff, 0xfe, 0x00, 0x01]),
          headers: { ...typed, [Headers.MessageId]: Buffer.from([0xc3, 0x28]) },
        },
        // Packed bus headers that are not a JSON object.
        {
          key: 'f',
          value: '{"n":8}',
          headers: { [PACKED_HEADERS]: '["not", "an", "object"]' },
        },
        {
          key: 'e',
          value: '{"n":7}',
          headers: { ...typed, [Headers.MessageId]: `${world.id}-good` },
        },
      ],
    });
    await expect.poll(() => handled, wait).toEqual([7]);
    await expect.poll(() => errors.messages.length, wait).toBe(5);
    const codes = errors.messages.map((m) => m.headers[Headers.ExceptionCode]).sort();
    expect(codes).toEqual([
      'TIDINGS_DESERIALIZATION',
      'TIDINGS_DESERIALIZATION',
      'TIDINGS_DESERIALIZATION',
      'TIDINGS_MALFORMED_MESSAGE',
      'TIDINGS_MALFORMED_MESSAGE',
    ]);
    const packed = errors.messages.find((m) => m.body.toString() === '{"n":8}');
    expect(packed?.headers[Headers.ExceptionMessage]).toContain(
      `record header '${PACKED_HEADERS}' must be a JSON object of strings`,
    );
    expect(server.stats.movedToErrorQueue).toBe(5);
  });

  it('record keys and header values that are not UTF-8 arrive as base64, so distinct ids stay distinct', async () => {
    const received: Array<{ n: number; id: string; raw: string | undefined }> = [];
    const server = world.endpoint('Server');
    server.handle(
      Work,
      (p, ctx) => void received.push({ n: p.n, id: ctx.messageId, raw: ctx.headers['x-raw'] }),
    );
    await server.start();

    const kafka = new Kafka({ clientId: 'raw', brokers: brokers(), logLevel: logLevel.NOTHING });
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    const typed = { [Headers.MessageType]: Work.name, [Headers.ContentType]: 'application/json' };
    // Both decode to '\uFFFD' with replacement characters.
    const ids = [Buffer.from([0xff]), Buffer.from([0xfe])];
    await producer.send({
      topic: world.name('Server'),
      acks: -1,
      messages: ids.map((id, n) => ({
        key: Buffer.from([0xc0, n]),
        value: JSON.stringify({ n }),
        headers: { ...typed, [Headers.MessageId]: id, 'x-raw': Buffer.from([0x80, n]) },
      })),
    });
    await expect.poll(() => received.length, wait).toBe(2);
    expect(received.sort((a, b) => a.n - b.n)).toEqual([
      { n: 0, id: 'base64:/w==', raw: 'base64:gAA=' },
      { n: 1, id: 'base64:/g==', raw: 'base64:gAE=' },
    ]);
    expect(server.stats.movedToErrorQueue).toBe(0);
  });

  it('a record header with a null value (produced with kcat) is left out; the record is handled', async () => {
    const handled: number[] = [];
    const server = world.endpoint('Server');
    server.handle(Work, (p) => void handled.push(p.n));
    await server.start();
    // kafkajs cannot produce a null header value; kcat writes `-H name` without `=value` as one.
    const headers = [
      'x-nothing',
      `${Headers.MessageType}=${Work.name}`,
      `${Headers.ContentType}=application/json`,
      `${Headers.MessageId}=${world.id}-null-header`,
    ].flatMap((header) => ['-H', header]);
    execFileSync(
      'kcat',
      ['-P', '-b', brokers().join(','), '-t', world.name('Server'), '-k', 'g', ...headers],
      { input: '{"n":9}\n' },
    );
    const sender = world.endpoint('Client', {
      sendOnly: true,
      routes: { [Work.name]: world.name('Server') },
    });
    await sender.start();
    await sender.send(Work, { n: 10 });
    await expect.poll(() => [...handled].sort((a, b) => a - b), wait).toEqual([9, 10]);
    expect(server.stats.movedToErrorQueue).toBe(0);
  });

  it('a consumer stopped by an error kafkajs does not retry is started again', async () => {
    const proxy = await proxyCluster(brokers());
    cleanups.push(() => proxy.close());
    // The group is refused twice, as by an ACL fixed soon after: kafkajs gives up on the first.
    proxy.failJoins(world.name('Server'), 2);
    const handled: number[] = [];
    const server = world.endpoint('Server', {
      transport: world.transport({
        brokers: proxy.brokers,
        mapBrokerAddress: proxy.mapBrokerAddress,
      }),
    });
    server.handle(Work, (p) => void handled.push(p.n));
    await server.start();
    const sender = world.endpoint('Sender', {
      sendOnly: true,
      routes: { [Work.name]: world.name('Server') },
    });
    await sender.start();
    await sender.send(Work, { n: 1 });
    await expect.poll(() => handled, wait).toEqual([1]);
    expect(proxy.joinsFailed).toBe(2);
  });

  it('a subscribe that failed while the cluster was unreachable succeeds when made again', async () => {
    const proxy = await proxyCluster(brokers());
    cleanups.push(() => proxy.close());
    // Few retries: the failure comes quickly.
    const transport = world.transport({
      brokers: proxy.brokers,
      mapBrokerAddress: proxy.mapBrokerAddress,
      retries: 1,
    });
    const { connection, messages: received } = await readQueue(world, world.name('Raw'), transport);
    const type = `${world.id}.Changed`;
    const publish = (id: string) => publishRaw(connection, type, id);
    // Creates the event topic: subscribing needs no topic creation, only the cluster.
    await publish('before-subscribe');

    proxy.pauseAll();
    proxy.cutAll();
    await expect(connection.subscribe(type)).rejects.toBeInstanceOf(TransportUnavailableError);
    proxy.resumeAll();

    await connection.subscribe(type);
    await publish('after-subscribe');
    await expect.poll(() => received.map((m) => m.messageId), wait).toEqual(['after-subscribe']);
    await connection.stopReceiving();
    await connection.close();
  });
});
