import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEndpoint, createSendOnlyEndpoint, defineMessage, silentLogger } from '@tidings/core';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLearningTransport } from '../src/index.ts';

// The fixture runs in plain node and imports the built packages.
const here = dirname(fileURLToPath(import.meta.url));
const worker = join(here, 'fixtures', 'worker.mjs');
const built = join(here, '..', 'dist', 'index.js');

const Work = defineMessage<{ n: number; hold?: boolean }>('mp.Work');
const Ping = defineMessage<{ n: number }>('mp.Ping');
const Pong = defineMessage<{ n: number; pid: number }>('mp.Pong');
const Happened = defineMessage<{ n: number }>('mp.Happened');

interface Report {
  readonly pid: number;
  readonly ready?: boolean;
  readonly handled?: number;
  readonly holding?: number;
  readonly event?: number;
}

const wait = { timeout: 20_000, interval: 20 };

describe('several processes share one root directory', () => {
  let rootDir: string;
  let children: ChildProcess[];
  let reports: Report[];

  beforeAll(() => {
    if (!existsSync(built)) {
      throw new Error(
        'The multi-process tests run the built package: run `npm run build` in packages/core and packages/transport-learning first.',
      );
    }
  });

  beforeEach(() => {
    rootDir = mkdtempSync(join(tmpdir(), 'tidings-mp-'));
    children = [];
    reports = [];
  });

  afterEach(async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    rmSync(rootDir, { recursive: true, force: true });
  });

  /** Starts a worker process and resolves once its endpoint has started. */
  const spawnWorker = async (endpoint: string, instance: string): Promise<ChildProcess> => {
    const child = fork(worker, [], {
      env: {
        ...process.env,
        TIDINGS_ROOT: rootDir,
        TIDINGS_ENDPOINT: endpoint,
        TIDINGS_INSTANCE: instance,
      },
      // Plain node: not the test runner's flags (which resolve workspace packages to sources).
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.push(child);
    child.on('message', (message) => reports.push(message as Report));
    await expect.poll(() => reports.some((r) => r.pid === child.pid && r.ready), wait).toBe(true);
    return child;
  };

  const stopWorker = (child: ChildProcess) =>
    new Promise<number | null>((resolve) => {
      child.once('exit', (code) => resolve(code));
      child.send('stop');
    });

  const sender = async (routes: Record<string, string> = {}) => {
    const endpoint = createSendOnlyEndpoint({
      name: 'mp-Sender',
      transport: createLearningTransport({ rootDir }),
      logger: silentLogger,
      routes,
    });
    await endpoint.start();
    return endpoint;
  };

  it('two processes compete on one queue: each message is handled once, by one of them', async () => {
    const a = await spawnWorker('mp-Server', 'a');
    const b = await spawnWorker('mp-Server', 'b');
    const send = await sender({ [Work.name]: 'mp-Server' });
    await Promise.all(Array.from({ length: 200 }, (_, n) => send.send(Work, { n })));
    await send.stop();

    await expect.poll(() => reports.filter((r) => r.handled !== undefined).length, wait).toBe(200);
    expect(await stopWorker(a)).toBe(0);
    expect(await stopWorker(b)).toBe(0);
    const handled = reports.filter((r) => r.handled !== undefined);
    expect(new Set(handled.map((r) => r.handled)).size).toBe(200);
    expect(handled.some((r) => r.pid === a.pid)).toBe(true);
    expect(handled.some((r) => r.pid === b.pid)).toBe(true);
    // Nothing left behind: no ready and no claimed files.
    expect(readdirSync(join(rootDir, 'mp-Server')).filter((f) => f.endsWith('.msg'))).toEqual([]);
    expect(readdirSync(join(rootDir, 'mp-Server', '.claimed'))).toEqual([]);
  });

  it('a process killed mid-handler leaves its message to be received by another process', async () => {
    const doomed = await spawnWorker('mp-Server', 'doomed');
    const send = await sender({ [Work.name]: 'mp-Server' });
    await send.send(Work, { n: 7, hold: true });
    await send.send(Work, { n: 8 });
    await send.stop();
    await expect.poll(() => reports.some((r) => r.holding === 7), wait).toBe(true);
    // Kill only once 8 is handled and settled, so exactly one message (7) is left mid-handler.
    await expect.poll(() => reports.some((r) => r.handled === 8), wait).toBe(true);
    const claimedByDoomed = () =>
      readdirSync(join(rootDir, 'mp-Server', '.claimed')).filter((f) =>
        f.includes(`.${doomed.pid}-`),
      );
    await expect.poll(() => claimedByDoomed().length, wait).toBe(1);

    const exited = new Promise((resolve) => doomed.once('exit', resolve));
    doomed.kill('SIGKILL');
    await exited;
    // The message is still claimed under the dead process's id.
    expect(claimedByDoomed()).toHaveLength(1);

    const survivor = await spawnWorker('mp-Server', 'survivor');
    // The survivor handles 7 once it sees the claim's owner is dead (7 would hold again:
    // the survivor reports `holding`, which proves the message was received a second time).
    await expect
      .poll(() => reports.some((r) => r.pid === survivor.pid && r.holding === 7), wait)
      .toBe(true);
    expect(reports.filter((r) => r.handled === 8)).toHaveLength(1);
  });

  it('request and reply across processes: the reply reaches the asking instance', async () => {
    await spawnWorker('mp-Server', 's1');
    const client = createEndpoint({
      name: 'mp-Client',
      instanceId: 'c1',
      transport: createLearningTransport({ rootDir }),
      logger: silentLogger,
      routes: { [Ping.name]: 'mp-Server' },
    });
    await client.start();
    try {
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, n) => client.request(Ping, { n }, { expect: Pong })),
      );
      expect(replies.map((r) => r.n)).toEqual(Array.from({ length: 20 }, (_, n) => n));
      expect(replies.every((r) => r.pid !== process.pid)).toBe(true);
    } finally {
      await client.stop();
    }
  });

  it('publish finds subscribers that another process recorded on disk', async () => {
    const subscriber = await spawnWorker('mp-Subscriber', 'x');
    const publisher = await sender();
    await publisher.publish(Happened, { n: 1 });
    await publisher.stop();
    await expect.poll(() => reports.filter((r) => r.event === 1).length, wait).toBe(1);
    expect(reports.find((r) => r.event === 1)?.pid).toBe(subscriber.pid);
  });
});
