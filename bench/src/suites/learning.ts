import { watch } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEndpoint, defineMessage, type Endpoint, silentLogger } from '@tidings/core';
import { createLearningTransport } from '@tidings/transport-learning';
import { type BenchSuite, rowFor, runConcurrent } from '../report.js';

const Order = defineMessage<{ id: number; sku: string }>('bench.Order');
const Ack = defineMessage<{ id: number }>('bench.Ack');

const transportName = 'learning (file system)';
const oneWayCount = 5_000;

async function withRoot<T>(run: (rootDir: string) => Promise<T>): Promise<T> {
  const rootDir = await mkdtemp(join(tmpdir(), 'tidings-bench-'));
  try {
    return await run(rootDir);
  } finally {
    await rm(rootDir, { recursive: true, force: true });
  }
}

async function endpoints(rootDir: string) {
  let handled = 0;
  const server = createEndpoint({
    name: 'BenchServer',
    transport: createLearningTransport({ rootDir }),
    logger: silentLogger,
    concurrency: 64,
  });
  server.handle(Order, async (order, ctx) => {
    handled++;
    if (ctx.headers['bench-reply'] === '1') await ctx.reply(Ack, { id: order.id });
  });
  // Its own transport, as a second process would have.
  const client = createEndpoint({
    name: 'BenchClient',
    transport: createLearningTransport({ rootDir }),
    logger: silentLogger,
    routes: { [Order.name]: 'BenchServer' },
  });
  await server.start();
  await client.start();
  return { server, client, handled: () => handled };
}

async function stopAll(...endpoints: Endpoint[]) {
  for (const endpoint of endpoints) await endpoint.stop();
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 1));
}

const tidingsOneWay = () =>
  withRoot(async (rootDir) => {
    const { server, client, handled } = await endpoints(rootDir);
    const started = performance.now();
    await runConcurrent(oneWayCount, 64, (id) => client.send(Order, { id, sku: 'sku-1' }));
    await until(() => handled() >= oneWayCount);
    const elapsed = performance.now() - started;
    await stopAll(client, server);
    return row('one-way', 'tidings', oneWayCount, elapsed);
  });

const tidingsRequestReply = (concurrency: number, total: number) =>
  withRoot(async (rootDir) => {
    const { server, client } = await endpoints(rootDir);
    const options = { expect: Ack, headers: { 'bench-reply': '1' } } as const;
    const { elapsedMs, latenciesMs } = await runConcurrent(total, concurrency, async (id) => {
      await client.request(Order, { id, sku: 'sku-1' }, options);
    });
    await stopAll(client, server);
    return row(`request/reply c=${concurrency}`, 'tidings', total, elapsedMs, latenciesMs);
  });

/**
 * The baseline: the same file moves with no bus — write a temp file and rename it into a folder,
 * a reader woken by fs.watch lists the folder, claims a file by rename, reads it, deletes it.
 */
class RawFolder {
  private seq = 0;
  private readonly watcher;
  private busy = false;
  private again = false;
  constructor(
    readonly root: string,
    readonly name: string,
    private readonly onMessage: (body: Buffer) => Promise<void> | void,
  ) {
    this.watcher = watch(join(root, name), () => void this.drain());
  }
  static async create(root: string, name: string, onMessage: (body: Buffer) => void) {
    await mkdir(join(root, name, 'claimed'), { recursive: true });
    await mkdir(join(root, 'tmp'), { recursive: true });
    return new RawFolder(root, name, onMessage);
  }
  async put(body: string): Promise<void> {
    const file = `${Date.now()}-${process.pid}-${this.seq++}.msg`;
    const tmp = join(this.root, 'tmp', `${this.name}-${file}`);
    await writeFile(tmp, body);
    await rename(tmp, join(this.root, this.name, file));
  }
  private async drain(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    do {
      this.again = false;
      const names = (await readdir(join(this.root, this.name))).filter((n) => n.endsWith('.msg'));
      await Promise.all(
        names.map(async (name) => {
          const claimed = join(this.root, this.name, 'claimed', name);
          try {
            await rename(join(this.root, this.name, name), claimed);
          } catch {
            return;
          }
          const body = await readFile(claimed);
          await this.onMessage(body);
          await unlink(claimed);
        }),
      );
    } while (this.again);
    this.busy = false;
  }
  close(): void {
    this.watcher.close();
  }
}

const rawOneWay = () =>
  withRoot(async (rootDir) => {
    let handled = 0;
    const folder = await RawFolder.create(rootDir, 'orders', (body) => {
      JSON.parse(body.toString('utf8'));
      handled++;
    });
    const started = performance.now();
    await runConcurrent(oneWayCount, 64, (id) => folder.put(JSON.stringify({ id, sku: 'sku-1' })));
    await until(() => handled >= oneWayCount);
    const elapsed = performance.now() - started;
    folder.close();
    return row('one-way', 'raw fs (rename + watch)', oneWayCount, elapsed);
  });

const rawRequestReply = (concurrency: number, total: number) =>
  withRoot(async (rootDir) => {
    const pending = new Map<number, () => void>();
    const replies = await RawFolder.create(rootDir, 'replies', (body) => {
      const { id } = JSON.parse(body.toString('utf8')) as { id: number };
      pending.get(id)?.();
      pending.delete(id);
    });
    const requests = await RawFolder.create(rootDir, 'requests', (body) => {
      const { id } = JSON.parse(body.toString('utf8')) as { id: number };
      return replies.put(JSON.stringify({ id }));
    });
    const { elapsedMs, latenciesMs } = await runConcurrent(
      total,
      concurrency,
      (id) =>
        new Promise<void>((resolve, reject) => {
          pending.set(id, resolve);
          requests.put(JSON.stringify({ id, sku: 'sku-1' })).catch(reject);
        }),
    );
    requests.close();
    replies.close();
    return row(
      `request/reply c=${concurrency}`,
      'raw fs (rename + watch)',
      total,
      elapsedMs,
      latenciesMs,
    );
  });

const row = rowFor(transportName);

export const learningSuite: BenchSuite = {
  name: 'learning',
  async run() {
    return [
      await rawOneWay(),
      await tidingsOneWay(),
      await rawRequestReply(1, 500),
      await tidingsRequestReply(1, 500),
      await rawRequestReply(100, 3_000),
      await tidingsRequestReply(100, 3_000),
    ];
  },
};
