import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  ConfigurationError,
  createEndpoint,
  defineMessage,
  Headers,
  silentLogger,
} from '@tidings/core';
import type {
  IncomingTransportMessage,
  MessageOutcome,
  TransportEndpoint,
} from '@tidings/core/transport';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createLearningTransport,
  type LearningTransportOptions,
  learningTransportDefaults,
  MAX_DELAY_MS,
} from '../src/index.ts';

const wait = { timeout: 10_000, interval: 10 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fast: LearningTransportOptions = { housekeepingIntervalMs: 20, leaseMs: 1000 };

describe('learning transport on disk', () => {
  let rootDir: string;
  let connections: TransportEndpoint[];

  beforeEach(() => {
    rootDir = mkdtempSync(join(tmpdir(), 'tidings-lt-'));
    connections = [];
  });
  afterEach(async () => {
    await Promise.allSettled(connections.map((c) => c.close()));
    rmSync(rootDir, { recursive: true, force: true });
  });

  const open = async (
    queue: string | undefined,
    options: LearningTransportOptions = {},
    extra: { instanceQueue?: string; subscriptions?: string[] } = {},
  ) => {
    const transport = createLearningTransport({ rootDir, ...fast, ...options });
    const connection = await transport.openEndpoint(
      {
        endpointName: queue ?? 'sender',
        ...(queue !== undefined ? { inputQueue: queue } : {}),
        ...(extra.instanceQueue !== undefined ? { instanceQueue: extra.instanceQueue } : {}),
        errorQueue: 'error',
        subscriptions: extra.subscriptions ?? [],
      },
      { logger: silentLogger },
    );
    connections.push(connection);
    return connection;
  };

  const receive = async (
    connection: TransportEndpoint,
    decide: (m: IncomingTransportMessage) => MessageOutcome | Promise<MessageOutcome> = () =>
      'complete',
  ) => {
    const got: IncomingTransportMessage[] = [];
    await connection.startReceiving({
      concurrency: 4,
      onMessage: async (m) => {
        got.push(m);
        return decide(m);
      },
    });
    return got;
  };

  const message = (id: string, body: Uint8Array | string = '{"n":1}') => ({
    messageId: id,
    headers: { [Headers.MessageId]: id, [Headers.MessageType]: 't.Work', 'x-note': 'héllo' },
    body: typeof body === 'string' ? Buffer.from(body) : body,
  });
  const toQueue = (queue: string) => ({ kind: 'queue', queue }) as const;
  const msgFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.msg'));

  it('defaults: rootDir is .tidings in the working directory, 4 MiB, durable', () => {
    const transport = createLearningTransport();
    expect(transport.rootDir).toBe(resolve('.tidings'));
    expect(learningTransportDefaults.rootDir).toBe('.tidings');
    expect(transport.capabilities).toEqual({
      delayedDelivery: true,
      nativePublishSubscribe: true,
      maxMessageSizeBytes: 4 * 1024 * 1024,
      deliveryCount: true,
      durable: true,
      maxDelayMs: MAX_DELAY_MS,
    });
  });

  it('one readable file per message: headers and a UTF-8 body as text, in the queue folder', async () => {
    await open('Q');
    const sender = await open(undefined);
    await sender.dispatch([{ message: message('m1'), destination: toQueue('Q') }]);
    const [file] = msgFiles(join(rootDir, 'Q'));
    expect(file).toMatch(/^\d{14}-[0-9a-z]+-[0-9a-z]+\.0\.msg$/);
    const onDisk = JSON.parse(readFileSync(join(rootDir, 'Q', file as string), 'utf8'));
    expect(onDisk).toEqual({
      tidings: 1,
      messageId: 'm1',
      headers: message('m1').headers,
      bodyEncoding: 'utf8',
      body: '{"n":1}',
    });
    // Nothing is left in the staging folder.
    expect(readdirSync(join(rootDir, '.tmp'))).toEqual([]);
  });

  it('a body that is not UTF-8 travels as base64 and arrives byte for byte', async () => {
    const receiver = await open('Q');
    const got = await receive(receiver);
    const sender = await open(undefined);
    const bytes = new Uint8Array([0, 255, 254, 10, 13, 128]);
    await sender.dispatch([{ message: message('bin', bytes), destination: toQueue('Q') }]);
    await expect.poll(() => got.length, wait).toBe(1);
    expect([...(got[0]?.body ?? [])]).toEqual([...bytes]);
    expect(got[0]?.headers['x-note']).toBe('héllo');
    expect(got[0]).toMatchObject({ messageId: 'bin', queue: 'Q', deliveryCount: 1 });
  });

  it('abandon puts the message back with its delivery counted; complete deletes the file', async () => {
    const receiver = await open('Q');
    const got = await receive(receiver, (m) => (m.deliveryCount === 1 ? 'abandon' : 'complete'));
    const sender = await open(undefined);
    await sender.dispatch([{ message: message('m1'), destination: toQueue('Q') }]);
    await expect.poll(() => got.map((m) => m.deliveryCount), wait).toEqual([1, 2]);
    await expect.poll(() => msgFiles(join(rootDir, 'Q')), wait).toEqual([]);
    expect(readdirSync(join(rootDir, 'Q', '.claimed'))).toEqual([]);
  });

  it('a file that is not a message reaches the error queue as malformed; the queue keeps flowing', async () => {
    const Work = defineMessage<{ n: number }>('t.Work');
    const handled: number[] = [];
    const errors = await receive(await open('error'));
    const endpoint = createEndpoint({
      name: 'Q',
      transport: createLearningTransport({ rootDir, ...fast }),
      logger: silentLogger,
      recoverability: { errorQueue: 'error' },
    });
    endpoint.handle(Work, (p) => void handled.push(p.n));
    await endpoint.start();
    try {
      writeFileSync(join(rootDir, 'Q', '00000000000001-junk-x.0.msg'), 'not json at all');
      const sender = await open(undefined);
      await sender.dispatch([{ message: message('ok', '{"n":5}'), destination: toQueue('Q') }]);
      await expect.poll(() => handled, wait).toEqual([5]);
      await expect.poll(() => errors.length, wait).toBe(1);
      expect(errors[0]?.headers[Headers.ExceptionCode]).toBe('TIDINGS_MALFORMED_MESSAGE');
      expect(Buffer.from(errors[0]?.body ?? []).toString()).toBe('not json at all');
    } finally {
      await endpoint.stop();
    }
  });

  it('a batch with one missing destination writes nothing', async () => {
    await open('Q');
    const sender = await open(undefined);
    await expect(
      sender.dispatch([
        { message: message('a'), destination: toQueue('Q') },
        { message: message('b'), destination: toQueue('Missing') },
      ]),
    ).rejects.toMatchObject({ code: 'TIDINGS_DESTINATION_NOT_FOUND' });
    expect(msgFiles(join(rootDir, 'Q'))).toEqual([]);
    expect(readdirSync(join(rootDir, '.tmp'))).toEqual([]);
  });

  it('delayed messages wait in .delayed under their due time, then move into the queue', async () => {
    const receiver = await open('Q');
    const sender = await open(undefined);
    const before = Date.now();
    await sender.dispatch([{ message: message('later'), destination: toQueue('Q'), delayMs: 400 }]);
    const [file] = readdirSync(join(rootDir, '.delayed'));
    const due = Number(file?.split('~')[0]);
    expect(due).toBeGreaterThanOrEqual(before + 400);
    expect(file).toMatch(/~Q\.msg$/);
    expect(msgFiles(join(rootDir, 'Q'))).toEqual([]);
    const got = await receive(receiver);
    await expect.poll(() => got.length, wait).toBe(1);
    expect(Date.now()).toBeGreaterThanOrEqual(due);
    expect(readdirSync(join(rootDir, '.delayed'))).toEqual([]);
  });

  it('subscriptions are files under .subscriptions/<type>/<queue>; publish fans out to them', async () => {
    const a = await open('SubA', {}, { subscriptions: ['t.Happened', 'odd:name'] });
    const b = await open('SubB');
    await b.subscribe('t.Happened');
    expect(readdirSync(join(rootDir, '.subscriptions', 't.Happened')).sort()).toEqual([
      'SubA',
      'SubB',
    ]);
    // ':' is escaped so the layout also works where file names cannot hold it.
    expect(readdirSync(join(rootDir, '.subscriptions'))).toContain('odd%3aname');
    const gotA = await receive(a);
    const gotB = await receive(b);
    const publisher = await open(undefined);
    await publisher.dispatch([
      { message: message('e1'), destination: { kind: 'publish', messageType: 't.Happened' } },
    ]);
    await expect.poll(() => [gotA.length, gotB.length], wait).toEqual([1, 1]);
    await b.unsubscribe('t.Happened');
    expect(readdirSync(join(rootDir, '.subscriptions', 't.Happened'))).toEqual(['SubA']);
    // No subscribers: publishing writes nothing and succeeds.
    await publisher.dispatch([
      { message: message('e2'), destination: { kind: 'publish', messageType: 't.Nobody' } },
    ]);
    expect(readdirSync(join(rootDir, '.tmp'))).toEqual([]);
  });

  it('close returns messages whose handling has not answered, so they are not held', async () => {
    const receiver = await open('Q');
    const got = await receive(receiver, () => new Promise<MessageOutcome>(() => {}));
    const sender = await open(undefined);
    await sender.dispatch([{ message: message('stuck'), destination: toQueue('Q') }]);
    await expect.poll(() => got.length, wait).toBe(1);
    expect(readdirSync(join(rootDir, 'Q', '.claimed'))).toHaveLength(1);
    await receiver.close();
    expect(readdirSync(join(rootDir, 'Q', '.claimed'))).toEqual([]);
    expect(msgFiles(join(rootDir, 'Q'))).toEqual([expect.stringMatching(/\.1\.msg$/)]);
    const again = await receive(await open('Q'));
    await expect.poll(() => again.map((m) => m.deliveryCount), wait).toEqual([2]);
  });

  it('stopReceiving stops taking messages; startReceiving again resumes', async () => {
    const receiver = await open('Q');
    const got = await receive(receiver);
    const sender = await open(undefined);
    await receiver.stopReceiving();
    await sender.dispatch([{ message: message('while-stopped'), destination: toQueue('Q') }]);
    await sleep(200);
    expect(got).toEqual([]);
    expect(msgFiles(join(rootDir, 'Q'))).toHaveLength(1);
    const again = await receive(receiver);
    await expect.poll(() => again.map((m) => m.messageId), wait).toEqual(['while-stopped']);
  });

  describe('taking back claims of receivers that are gone', () => {
    let planted = 0;
    const plantClaim = (owner: string) => {
      const file = `00000000000001-000000${++planted}-x.1.${owner}.msg`;
      writeFileSync(
        join(rootDir, 'Q', '.claimed', file),
        JSON.stringify({ messageId: owner, headers: {}, bodyEncoding: 'utf8', body: '' }),
      );
      return file;
    };

    it('a claim whose process is dead comes back, its delivery counted', async () => {
      const receiver = await open('Q');
      // Far above any real pid on Linux (pid_max is at most 2^22).
      plantClaim('99999999-dead');
      const got = await receive(receiver);
      await expect.poll(() => got.length, wait).toBe(1);
      expect(got[0]).toMatchObject({ messageId: '99999999-dead', deliveryCount: 2 });
    });

    it('a claim whose owner has no heartbeat (closed) or a stale one comes back', async () => {
      const receiver = await open('Q');
      plantClaim(`${process.pid}-closed`);
      const staleOwner = `${process.pid}-stale`;
      const heartbeat = join(rootDir, '.owners', staleOwner);
      writeFileSync(heartbeat, '');
      const old = new Date(Date.now() - 5_000);
      utimesSync(heartbeat, old, old);
      plantClaim(staleOwner);
      const got = await receive(receiver);
      await expect
        .poll(() => got.map((m) => m.messageId).sort(), wait)
        .toEqual([`${process.pid}-closed`, staleOwner]);
    });

    it('a claim of a live receiver with a fresh heartbeat stays with it', async () => {
      const holder = await open('Q');
      const held = await receive(holder, () => new Promise<MessageOutcome>(() => {}));
      const sender = await open(undefined);
      await sender.dispatch([{ message: message('held'), destination: toQueue('Q') }]);
      await expect.poll(() => held.length, wait).toBe(1);
      const other = await receive(await open('Q'));
      // Well past a lease's worth of housekeeping cycles of the other receiver.
      await sleep(1_500);
      expect(other).toEqual([]);
      expect(readdirSync(join(rootDir, 'Q', '.claimed'))).toHaveLength(1);
    });
  });

  it('a second live receiver of an instance queue is refused; a dead holder is taken over', async () => {
    const first = await open('Svc', {}, { instanceQueue: 'Svc.web-1' });
    await receive(first);
    const second = await open('Svc', {}, { instanceQueue: 'Svc.web-1' });
    const refused = await receive(second).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ConfigurationError);
    expect(String(refused)).toMatch(/share an instance id/);
    await first.close();
    // The first stopped: the id is free.
    const third = await open('Svc', {}, { instanceQueue: 'Svc.web-1' });
    await receive(third);
    await third.close();
    // A holder whose process died (a pid that does not exist) does not block a restart.
    mkdirSync(join(rootDir, 'Svc.web-1', '.claimed'), { recursive: true });
    writeFileSync(join(rootDir, 'Svc.web-1', '.holder'), '2147483646-deadbeef');
    const restarted = await open('Svc', {}, { instanceQueue: 'Svc.web-1' });
    await receive(restarted);
  });

  it('a clean close removes its empty instance queue and keeps one that holds replies', async () => {
    const empty = await open('Svc', {}, { instanceQueue: 'Svc.empty' });
    await receive(empty);
    const holding = await open('Svc', {}, { instanceQueue: 'Svc.holding' });
    const sender = await open(undefined);
    await sender.dispatch([
      { message: message('late-reply'), destination: toQueue('Svc.holding') },
    ]);
    await empty.close();
    await holding.close();
    expect(readdirSync(rootDir)).not.toContain('Svc.empty');
    // Its reply waits for a restart with the same instance id (or for the queue's expiry).
    expect(msgFiles(join(rootDir, 'Svc.holding'))).toHaveLength(1);
    const restarted = await open('Svc', {}, { instanceQueue: 'Svc.holding' });
    const got = await receive(restarted);
    await expect.poll(() => got.map((m) => m.messageId), wait).toEqual(['late-reply']);
  });

  it('instance queues nobody touches expire; live ones and shared queues stay', async () => {
    const options = { instanceQueueExpiryMs: 1000 };
    // What a process that died leaves: its instance queue, not removed by a clean stop.
    mkdirSync(join(rootDir, 'Svc.gone', '.claimed'), { recursive: true });
    const marker = join(rootDir, 'Svc.gone', '.instance');
    writeFileSync(marker, '');
    const old = new Date(Date.now() - 60_000);
    utimesSync(marker, old, old);
    const live = await open('Svc', options, { instanceQueue: 'Svc.live' });
    await receive(live);
    await expect
      .poll(
        () =>
          readdirSync(rootDir)
            .filter((d) => d.startsWith('Svc'))
            .sort(),
        wait,
      )
      .toEqual(['Svc', 'Svc.live']);
    // The live instance touches its queue, so it outlives the expiry.
    await sleep(1_500);
    expect(readdirSync(rootDir)).toContain('Svc.live');
    // Old heartbeats (of processes long gone) and half-written files are swept too.
    for (const [dir, name] of [
      ['.owners', '424242-gone'],
      ['.tmp', 'half-written.tmp'],
    ] as const) {
      writeFileSync(join(rootDir, dir, name), '');
      utimesSync(join(rootDir, dir, name), old, old);
    }
    // One sweep deletes both, one after the other: poll for each, not for the first alone.
    await expect.poll(() => readdirSync(join(rootDir, '.tmp')), wait).toEqual([]);
    await expect
      .poll(() => readdirSync(join(rootDir, '.owners')), wait)
      .not.toContain('424242-gone');
  });
});
