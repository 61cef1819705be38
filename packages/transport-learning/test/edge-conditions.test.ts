import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConfigurationError,
  createEndpoint,
  defineMessage,
  type Endpoint,
  Headers,
  InvalidDestinationError,
  silentLogger,
  UsageError,
} from '@tidings/core';
import type { IncomingTransportMessage, TransportEndpoint } from '@tidings/core/transport';
import { recordingLogger } from '@tidings/transport-tests';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createLearningTransport,
  type LearningTransportOptions,
  MAX_DELAY_MS,
} from '../src/index.ts';

const wait = { timeout: 10_000, interval: 10 };
const fast: LearningTransportOptions = { housekeepingIntervalMs: 20, leaseMs: 1000 };
const Job = defineMessage<{ n: number }>('edge.Job');
const Done = defineMessage<{ n: number }>('edge.Done');

const message = (id: string, headers: Record<string, string> = {}) => ({
  messageId: id,
  headers: { [Headers.MessageId]: id, [Headers.MessageType]: 't.Work', ...headers },
  body: Buffer.from('{"n":1}'),
});

describe('learning transport under edge conditions', () => {
  /** The transport's root sits one level down, so '..' would land in `outside`. */
  let outside: string;
  let rootDir: string;
  let connections: TransportEndpoint[];
  let endpoints: Endpoint[];

  beforeEach(() => {
    outside = mkdtempSync(join(tmpdir(), 'tidings-edge-'));
    rootDir = join(outside, 'root');
    mkdirSync(rootDir);
    connections = [];
    endpoints = [];
  });
  afterEach(async () => {
    await Promise.allSettled(endpoints.map((e) => e.stop()));
    await Promise.allSettled(connections.map((c) => c.close()));
    rmSync(outside, { recursive: true, force: true });
  });

  const open = async (
    queue: string | undefined,
    subscriptions: string[] = [],
    logger = silentLogger,
  ) => {
    const transport = createLearningTransport({ rootDir, ...fast });
    const connection = await transport.openEndpoint(
      {
        endpointName: queue ?? 'sender',
        ...(queue !== undefined ? { inputQueue: queue } : {}),
        errorQueue: 'error',
        subscriptions,
      },
      { logger },
    );
    connections.push(connection);
    return connection;
  };

  const receive = async (connection: TransportEndpoint) => {
    const got: IncomingTransportMessage[] = [];
    await connection.startReceiving({
      concurrency: 4,
      onMessage: async (m) => {
        got.push(m);
        return 'complete';
      },
    });
    return got;
  };

  const endpoint = (name: string) => {
    const made = createEndpoint({
      name,
      transport: createLearningTransport({ rootDir, ...fast }),
      logger: silentLogger,
    });
    endpoints.push(made);
    return made;
  };

  it('a subscription whose queue folder was deleted is skipped with one warning; publish succeeds once per live subscriber', async () => {
    const logger = recordingLogger();
    const live = await open('EdgeLive', ['t.Happened']);
    await open('EdgeGone', ['t.Happened']);
    rmSync(join(rootDir, 'EdgeGone'), { recursive: true });
    const got = await receive(live);
    const publisher = await open(undefined, [], logger);
    for (const id of ['e1', 'e2']) {
      await publisher.dispatch([
        { message: message(id), destination: { kind: 'publish', messageType: 't.Happened' } },
      ]);
    }
    await expect.poll(() => got.map((m) => m.messageId).sort(), wait).toEqual(['e1', 'e2']);
    const warnings = logger.lines.filter((line) => line.includes("subscriber 'EdgeGone'"));
    expect(warnings).toHaveLength(1);
    expect(readdirSync(join(rootDir, '.tmp'))).toEqual([]);
  });

  it.each(['..', '.', '.delayed', '.subscriptions', '../root', 'a/b', 'q'.repeat(202)])(
    'refuses to send to %j, even past core, and writes nothing outside its folders',
    async (to) => {
      const sender = await open(undefined);
      await expect(
        sender.dispatch([{ message: message('x1'), destination: { kind: 'queue', queue: to } }]),
      ).rejects.toBeInstanceOf(InvalidDestinationError);
      expect(readdirSync(outside)).toEqual(['root']);
      expect(readdirSync(join(rootDir, '.delayed'))).toEqual([]);
      expect(readdirSync(join(rootDir, '.tmp'))).toEqual([]);
    },
  );

  it('send with to: ".." is refused by core with InvalidDestinationError', async () => {
    const sender = endpoint('EdgeSender');
    await sender.start();
    await expect(sender.send(Job, { n: 1 }, { to: '..' })).rejects.toBeInstanceOf(
      InvalidDestinationError,
    );
    expect(readdirSync(outside)).toEqual(['root']);
  });

  it("a foreign message with reply-to '..': ctx.reply writes nothing outside, the message goes to the error queue", async () => {
    const server = endpoint('EdgeReplier');
    server.handle(Job, async (job, ctx) => {
      await ctx.reply(Done, job);
    });
    await server.start();
    const errors = await receive(await open('error'));
    const sender = await open(undefined);
    await sender.dispatch([
      {
        message: message('hostile', {
          [Headers.MessageType]: Job.name,
          [Headers.Intent]: 'send',
          [Headers.ReplyTo]: '..',
        }),
        destination: { kind: 'queue', queue: 'EdgeReplier' },
      },
    ]);
    await expect.poll(() => errors.length, wait).toBe(1);
    expect(errors[0]?.headers[Headers.ExceptionCode]).toBe('TIDINGS_INVALID_DESTINATION');
    expect(server.stats.immediateRetries).toBe(0);
    expect(readdirSync(outside)).toEqual(['root']);
  });

  it('a long type name with many ":" starts and publishes; long names stay apart', async () => {
    const long = `${'sales:'.repeat(60)}OrderPlaced`;
    const other = `${'sales:'.repeat(60)}OrderShipped`;
    const a = await open('EdgeLongA', [long]);
    const b = await open('EdgeLongB', [other]);
    const gotA = await receive(a);
    const gotB = await receive(b);
    const publisher = await open(undefined);
    await publisher.dispatch([
      { message: message('long-1'), destination: { kind: 'publish', messageType: long } },
    ]);
    await expect.poll(() => gotA.length, wait).toBe(1);
    expect(gotB).toHaveLength(0);
    const folders = readdirSync(join(rootDir, '.subscriptions'));
    expect(folders).toHaveLength(2);
    for (const folder of folders) {
      expect(folder.length).toBeLessThanOrEqual(255);
      // Still readable: it starts with the type's name.
      expect(folder.startsWith('sales%3asales%3a')).toBe(true);
    }
  });

  it.each(['pollIntervalMs', 'housekeepingIntervalMs'])(
    'refuses %s of 2^31 ms or more, which Node.js would fire at once',
    (name) => {
      const options = {
        rootDir,
        leaseMs: 2 ** 33,
        instanceQueueExpiryMs: 2 ** 33,
        [name]: 2 ** 31,
      };
      expect(() => createLearningTransport(options)).toThrow(ConfigurationError);
      expect(() => createLearningTransport(options)).toThrow(`${name} must be at most`);
    },
  );

  it('refuses a delay it could never deliver with UsageError; the longest one it takes is declared', async () => {
    expect(createLearningTransport({ rootDir }).capabilities.maxDelayMs).toBe(MAX_DELAY_MS);
    const receiver = endpoint('EdgeDelayed');
    receiver.handle(Job, () => {});
    await receiver.start();
    const sender = endpoint('EdgeDelaySender');
    await sender.start();
    await expect(
      sender.send(Job, { n: 1 }, { to: 'EdgeDelayed', delayMs: 9e15 }),
    ).rejects.toBeInstanceOf(UsageError);
    const raw = await open(undefined);
    await expect(
      raw.dispatch([
        {
          message: message('late'),
          destination: { kind: 'queue', queue: 'EdgeDelayed' },
          delayMs: 9e15,
        },
      ]),
    ).rejects.toBeInstanceOf(UsageError);
    expect(readdirSync(join(rootDir, '.delayed'))).toEqual([]);
  });
});
