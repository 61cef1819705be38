import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createEndpoint, defineMessage, silentLogger } from '@tidings/core';
import { createRabbitMqTransport } from '@tidings/transport-rabbitmq';
import * as amqp from 'amqplib';
import { type BenchRow, type BenchSuite, percentile, runConcurrent } from '../report.js';

const Order = defineMessage<{ id: number; sku: string }>('bench.Order');
const Ack = defineMessage<{ id: number }>('bench.Ack');
/** Requests use their own type, so telling them from one-way sends needs no extra header. */
const Quote = defineMessage<{ id: number; sku: string }>('bench.Quote');

const url = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const transportName = 'rabbitmq';
const total = 20_000;
const latencyCount = 2_000;
/** Raw and Tidings alternate this many times; each figure is the median round (shared machines are noisy). */
const rounds = 3;
/** Sends in flight at once in the one-way scenario (confirms outstanding). */
const oneWayWindow = 500;
const rawWithHeaders = 'raw amqplib + bus headers';
const serverScript = fileURLToPath(new URL('./rabbitmq-server.js', import.meta.url));

/** The server side in a process of its own. */
class ServerProcess {
  private readonly child: ChildProcess;
  private listeners: Array<(message: { kind: string; cpuMicros?: number }) => void> = [];
  constructor(
    impl: 'tidings' | 'raw' | 'raw-headers',
    readonly queue: string,
  ) {
    this.child = fork(serverScript, [impl, queue, url], { execArgv: [], stdio: 'inherit' });
    this.child.on('message', (message: { kind: string; cpuMicros?: number }) => {
      for (const listener of this.listeners.splice(0)) listener(message);
    });
  }
  next(kind: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const exit = () => reject(new Error(`benchmark server exited before '${kind}'`));
      this.child.once('exit', exit);
      const listen = (message: { kind: string; cpuMicros?: number }) => {
        if (message.kind === kind) {
          this.child.off('exit', exit);
          resolve(message.cpuMicros ?? 0);
        } else this.listeners.push(listen);
      };
      this.listeners.push(listen);
    });
  }
  /**
   * Arms the server's counter (resolves once it is armed); the returned `done` resolves once it
   * has handled `n` messages, with the CPU time it spent (µs).
   */
  async expect(n: number): Promise<{ done: Promise<number> }> {
    const armed = this.next('expecting');
    this.child.send({ kind: 'expect', n });
    await armed;
    return { done: this.next('done') };
  }
  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.send({ kind: 'stop' });
    await exited;
  }
}

async function withServer<T>(
  impl: 'tidings' | 'raw' | 'raw-headers',
  run: (server: ServerProcess) => Promise<T>,
): Promise<T> {
  const server = new ServerProcess(impl, `bench-${impl}-${randomBytes(3).toString('hex')}`);
  await server.next('ready');
  try {
    return await run(server);
  } finally {
    await server.stop();
  }
}

/** CPU of both processes per message: steadier than throughput on a shared machine. */
interface Measured extends BenchRow {
  readonly cpuMicrosPerMessage: number;
}

/** Measures one scenario: elapsed time, and client plus server CPU. */
async function measure(
  server: ServerProcess,
  count: number,
  work: () => Promise<{ elapsedMs: number; latenciesMs?: number[] }>,
): Promise<{ elapsedMs: number; latenciesMs?: number[]; cpuMicrosPerMessage: number }> {
  const { done } = await server.expect(count);
  const clientCpu = process.cpuUsage();
  const result = await work();
  const serverMicros = await done;
  const client = process.cpuUsage(clientCpu);
  return { ...result, cpuMicrosPerMessage: (client.user + client.system + serverMicros) / count };
}

function row(
  scenario: string,
  impl: string,
  messages: number,
  measured: { elapsedMs: number; latenciesMs?: number[]; cpuMicrosPerMessage: number },
): Measured {
  const { elapsedMs, latenciesMs } = measured;
  return {
    transport: transportName,
    scenario,
    impl,
    messages,
    cpuMicrosPerMessage: measured.cpuMicrosPerMessage,
    perSecond: (messages / elapsedMs) * 1000,
    ...(latenciesMs
      ? { p50Ms: percentile(latenciesMs, 50), p99Ms: percentile(latenciesMs, 99) }
      : {}),
  };
}

const payload = (id: number) => ({ id, sku: 'sku-1' });

async function tidings(): Promise<Measured[]> {
  return withServer('tidings', async (server) => {
    const client = createEndpoint({
      name: `${server.queue}-client`,
      transport: createRabbitMqTransport({ url }),
      logger: silentLogger,
      routes: { [Order.name]: server.queue, [Quote.name]: server.queue },
      maxPendingRequests: 1_000,
      concurrency: 128,
      recoverability: { errorQueue: `${server.queue}-error` },
    });
    await client.start();
    const rows: Measured[] = [];
    try {
      // one-way: persistent, confirmed sends; timed until the server has handled all.
      const oneWay = await measure(server, total, async () => {
        const started = performance.now();
        await runConcurrent(total, oneWayWindow, (id) => client.send(Order, payload(id)));
        return { elapsedMs: performance.now() - started };
      });
      rows.push(row('one-way', 'tidings', total, oneWay));

      const options = { expect: Ack } as const;
      for (const [concurrency, count] of [
        [1, latencyCount],
        [100, total],
      ] as const) {
        const measured = await measure(server, count, () =>
          runConcurrent(count, concurrency, async (id) => {
            await client.request(Quote, payload(id), options);
          }),
        );
        rows.push(row(`request/reply c=${concurrency}`, 'tidings', count, measured));
      }
    } finally {
      await client.stop();
      const cleanup = await amqp.connect(url, { noDelay: true });
      const channel = await cleanup.createChannel();
      await channel.deleteQueue(`${server.queue}-client`);
      if (client.instanceQueue) await channel.deleteQueue(client.instanceQueue);
      await cleanup.close();
    }
    return rows;
  });
}

/**
 * Ten header strings shaped like Tidings' wire headers (names and typical values), for the
 * "raw amqplib + bus headers" row: what the header contract alone costs raw amqplib.
 */
function busLikeHeaders(queue: string): Record<string, string> {
  const id = randomUUID();
  return {
    'tidings.message-id': id,
    'tidings.correlation-id': id,
    'tidings.conversation-id': randomUUID(),
    'tidings.message-type': 'bench.Order',
    'tidings.content-type': 'application/json',
    'tidings.time-sent': new Date().toISOString(),
    'tidings.intent': 'send',
    'tidings.reply-to': `${queue}-client`,
    'tidings.originating-endpoint': `${queue}-client`,
    'tidings.originating-instance': 'a1b2c3d4',
  };
}

async function raw(withHeaders = false): Promise<Measured[]> {
  const impl = withHeaders ? rawWithHeaders : 'raw amqplib';
  return withServer(withHeaders ? 'raw-headers' : 'raw', async (server) => {
    const connection = await amqp.connect(url, { noDelay: true });
    const rows: Measured[] = [];
    try {
      const channel = await connection.createConfirmChannel();
      const send = (id: number, properties: amqp.Options.Publish = {}) =>
        new Promise<void>((resolve, reject) => {
          const body = Buffer.from(JSON.stringify(payload(id)));
          channel.sendToQueue(
            server.queue,
            body,
            {
              persistent: true,
              mandatory: true,
              messageId: randomUUID(),
              ...(withHeaders ? { headers: busLikeHeaders(server.queue) } : {}),
              ...properties,
            },
            (error) => (error ? reject(error) : resolve()),
          );
        });

      const oneWay = await measure(server, total, async () => {
        const started = performance.now();
        await runConcurrent(total, oneWayWindow, (id) => send(id));
        return { elapsedMs: performance.now() - started };
      });
      rows.push(row('one-way', impl, total, oneWay));

      // request/reply: a reply queue of our own, correlation ids, replies acked after handling.
      const replies = await channel.assertQueue('', { exclusive: true, autoDelete: true });
      const pending = new Map<string, () => void>();
      await channel.prefetch(256, false);
      await channel.consume(replies.queue, (message) => {
        if (message === null) return;
        JSON.parse(message.content.toString('utf8'));
        const done = pending.get(message.properties.correlationId as string);
        pending.delete(message.properties.correlationId as string);
        channel.ack(message);
        done?.();
      });
      for (const [concurrency, count] of [
        [1, latencyCount],
        [100, total],
      ] as const) {
        const measured = await measure(server, count, () =>
          runConcurrent(count, concurrency, (id) => {
            const correlationId = randomUUID();
            const replied = new Promise<void>((resolve) => pending.set(correlationId, resolve));
            return send(id, { replyTo: replies.queue, correlationId }).then(() => replied);
          }),
        );
        rows.push(row(`request/reply c=${concurrency}`, impl, count, measured));
      }
    } finally {
      await connection.close();
    }
    return rows;
  });
}

function brokerReachable(): Promise<boolean> {
  const target = new URL(url);
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: target.hostname, port: Number(target.port || 5672) });
    socket.setTimeout(2_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * RabbitMQ: the server in a separate process, the client here; Tidings and raw amqplib doing the
 * same work (persistent, confirmed, quorum queue; replies to a reply queue by correlation id).
 */
export const rabbitMqSuite: BenchSuite = {
  name: transportName,
  async unavailable() {
    return (await brokerReachable())
      ? undefined
      : `no RabbitMQ broker at ${new URL(url).host} (set RABBITMQ_URL)`;
  },
  async run() {
    const runs: Measured[][] = [];
    for (let round = 0; round < rounds; round++) {
      runs.push(await raw());
      runs.push(await raw(true));
      runs.push(await tidings());
    }
    const rows: BenchRow[] = [];
    for (const scenario of ['one-way', 'request/reply c=1', 'request/reply c=100']) {
      // The plain raw row comes last before Tidings: it is the baseline ratios are taken against.
      for (const impl of [rawWithHeaders, 'raw amqplib', 'tidings']) {
        const all = runs
          .flat()
          .filter((r) => r.scenario === scenario && r.impl === impl)
          .sort((a, b) => a.perSecond - b.perSecond);
        const median = all[Math.floor(all.length / 2)];
        if (median) {
          const { cpuMicrosPerMessage, ...figures } = median;
          const cpu = all.map((r) => r.cpuMicrosPerMessage).sort((a, b) => a - b);
          rows.push({
            ...figures,
            note: `median of ${all.length} alternating rounds (${all.map((r) => Math.round(r.perSecond)).join(', ')}/s); client+server CPU ${Math.round(cpu[Math.floor(cpu.length / 2)] ?? 0)} µs/msg`,
          });
        }
      }
    }
    return rows;
  },
};
