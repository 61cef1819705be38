/**
 * One side of the RabbitMQ benchmark: its client in this process, its server in a process of its
 * own (`rabbitmq-server.ts`, forked here), as a service and its callers run. `rabbitmq.ts` starts
 * one per side and runs them block by block (`interleavedBlocks`).
 *
 * Sides (first argument), each on the queue type of the second:
 *   raw-rpc: request/reply as users hand-write it with amqplib: a transient request, an exclusive
 *            server-named reply queue consumed without acks, correlation ids, no confirms.
 *   raw:     raw amqplib carrying Tidings' durable guarantees: a persistent confirmed request, the
 *            reply persistent and confirmed before the request is acked, an acked reply queue. The
 *            request's confirm and the reply are awaited together, as a round trip needs.
 *   tidings: Tidings with its defaults (a confirmed transient request, an express reply; ADR 13).
 *
 * Protocol (IPC): `{ kind: 'setup' }`, answered `{ kind: 'ready' }`; then `{ kind: 'block',
 * scenario, first, count, concurrency }`, answered with a `BlockResult` whose CPU time is the
 * client's plus the server's. Disconnecting closes the side and ends the process.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createEndpoint, defineMessage, silentLogger } from '@tidings/core';
import { createRabbitMqTransport } from '@tidings/transport-rabbitmq';
import * as amqp from 'amqplib';
import type { BlockResult } from '../report.js';
import { runConcurrent } from '../report.js';

const Order = defineMessage<{ id: number; sku: string }>('bench.Order');
const Ack = defineMessage<{ id: number }>('bench.Ack');
const Quote = defineMessage<{ id: number; sku: string }>('bench.Quote');

export type RabbitSide = 'raw-rpc' | 'raw' | 'tidings' | 'tidings-express';
export type QueueType = 'classic' | 'quorum';

export interface RabbitBlockCommand {
  readonly kind: 'block';
  /** One-way: `concurrency` confirmed sends at a time, done once the server has handled all. */
  readonly scenario: 'one-way' | 'request';
  readonly first: number;
  readonly count: number;
  readonly concurrency: number;
}

const [side, queueType, url] = process.argv.slice(2) as [RabbitSide, QueueType, string];
const serverScript = fileURLToPath(new URL('./rabbitmq-server.js', import.meta.url));
const payload = (id: number) => ({ id, sku: 'sku-1' });

/** The server process of this side. */
class ServerProcess {
  private readonly child: ChildProcess;
  private listeners: Array<(message: { kind: string; cpuMicros?: number }) => void> = [];
  private exited = false;
  constructor(readonly queue: string) {
    this.child = fork(serverScript, [side, queue, url, queueType], {
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (message: { kind: string; cpuMicros?: number }) => {
      for (const listener of this.listeners.splice(0)) listener(message);
    });
    this.child.once('exit', () => {
      this.exited = true;
      for (const listener of this.listeners.splice(0)) listener({ kind: 'exit' });
    });
  }
  next(kind: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const listen = (message: { kind: string; cpuMicros?: number }) => {
        if (message.kind === kind) resolve(message.cpuMicros ?? 0);
        else if (message.kind === 'exit' || this.exited) {
          reject(new Error(`the benchmark server exited before '${kind}'`));
        } else this.listeners.push(listen);
      };
      if (this.exited) listen({ kind: 'exit' });
      else this.listeners.push(listen);
    });
  }
  /** Arms the server's counter; `done` resolves with its CPU time (µs) once it handled `n`. */
  async expect(n: number): Promise<{ done: Promise<number> }> {
    const armed = this.next('expecting');
    this.child.send({ kind: 'expect', n });
    await armed;
    return { done: this.next('done') };
  }
  async stop(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.send({ kind: 'stop' });
    await exited;
  }
}

interface Client {
  send(id: number): Promise<unknown>;
  request(id: number): Promise<unknown>;
  close(): Promise<void>;
}

async function tidingsClient(queue: string, express: boolean): Promise<Client> {
  const client = createEndpoint({
    name: `${queue}-client`,
    transport: createRabbitMqTransport({ url, queueType }),
    logger: silentLogger,
    routes: { [Order.name]: queue, [Quote.name]: queue },
    maxPendingRequests: 1_000,
    concurrency: 100,
    recoverability: { errorQueue: `${queue}-error` },
  });
  await client.start();
  const options = { expect: Ack, ...(express ? { express: true } : {}) } as const;
  return {
    send: (id) => client.send(Order, payload(id)),
    request: (id) => client.request(Quote, payload(id), options),
    close: async () => {
      await client.stop();
      const cleanup = await amqp.connect(url, { noDelay: true });
      const channel = await cleanup.createChannel();
      await channel.deleteQueue(`${queue}-client`);
      if (client.instanceQueue) await channel.deleteQueue(client.instanceQueue);
      await cleanup.close();
    },
  };
}

async function rawClient(queue: string, durable: boolean): Promise<Client> {
  const connection = await amqp.connect(url, { noDelay: true });
  // Hand-written RPC publishes on a plain channel: no confirms at all.
  const channel = durable
    ? await connection.createConfirmChannel()
    : await connection.createChannel();
  const pending = new Map<string, () => void>();
  const replies = await channel.assertQueue('', { exclusive: true, autoDelete: true });
  await channel.consume(
    replies.queue,
    (message) => {
      if (message === null) return;
      JSON.parse(message.content.toString('utf8'));
      const correlationId = message.properties.correlationId as string;
      const done = pending.get(correlationId);
      pending.delete(correlationId);
      if (durable) channel.ack(message);
      done?.();
    },
    { noAck: !durable },
  );
  const confirmed = (id: number, properties: amqp.Options.Publish) =>
    new Promise<void>((resolve, reject) => {
      if (!durable) throw new Error('the hand-written RPC side runs no one-way scenario');
      (channel as amqp.ConfirmChannel).sendToQueue(
        queue,
        Buffer.from(JSON.stringify(payload(id))),
        { persistent: true, mandatory: true, messageId: randomUUID(), ...properties },
        (error) => (error ? reject(error) : resolve()),
      );
    });
  return {
    // One-way is persistent and confirmed on every side.
    send: (id) => confirmed(id, {}),
    request: (id) => {
      const correlationId = randomUUID();
      const replied = new Promise<void>((resolve) => pending.set(correlationId, resolve));
      if (durable) {
        return Promise.all([confirmed(id, { replyTo: replies.queue, correlationId }), replied]);
      }
      // Hand-written: transient, unconfirmed.
      channel.sendToQueue(queue, Buffer.from(JSON.stringify(payload(id))), {
        replyTo: replies.queue,
        correlationId,
      });
      return replied;
    },
    close: () => connection.close(),
  };
}

let server: ServerProcess | undefined;
let client: Client | undefined;

async function setup(): Promise<void> {
  const queue = `bench-${side}-${queueType}-${randomBytes(3).toString('hex')}`;
  server = new ServerProcess(queue);
  await server.next('ready');
  client = side.startsWith('tidings')
    ? await tidingsClient(queue, side === 'tidings-express')
    : await rawClient(queue, side === 'raw');
  // Warm up: connections, channels and the engine's first compilations.
  const warm = client;
  await runConcurrent(200, 10, (i) => warm.request(-1 - i).then(() => {}));
}

async function runBlock(command: RabbitBlockCommand): Promise<BlockResult> {
  if (server === undefined || client === undefined) throw new Error('a block before setup');
  const ready = client;
  const { first, count, concurrency } = command;
  const { done } = await server.expect(count);
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  let latenciesMs: number[] | undefined;
  if (command.scenario === 'one-way') {
    await runConcurrent(count, concurrency, (i) => ready.send(first + i).then(() => {}));
    await done;
  } else {
    ({ latenciesMs } = await runConcurrent(count, concurrency, (i) =>
      ready.request(first + i).then(() => {}),
    ));
  }
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  const serverMicros = await done;
  return { elapsedMs, cpuMicros: cpu.user + cpu.system + serverMicros, latenciesMs };
}

process.on('message', (message: { kind: string }) => {
  const work = async () => {
    if (message.kind === 'setup') {
      await setup();
      return { kind: 'ready' };
    }
    return { kind: 'block', ...(await runBlock(message as RabbitBlockCommand)) };
  };
  work().then(
    (answer) => process.send?.(answer),
    (error: unknown) => {
      process.send?.({ kind: 'error', message: String((error as Error)?.stack ?? error) });
      process.exitCode = 1;
    },
  );
});
process.once('disconnect', () => {
  void (async () => {
    await client?.close().catch(() => {});
    await server?.stop().catch(() => {});
  })().finally(() => process.exit());
});
