import { randomBytes, randomUUID } from 'node:crypto';
import { createEndpoint, defineMessage, type Endpoint, silentLogger } from '@tidings/core';
import { createPostgresPersistence, postgresSession } from '@tidings/persistence-postgres';
import { createRabbitMqTransport } from '@tidings/transport-rabbitmq';
import * as amqp from 'amqplib';
import pg from 'pg';
import { reachable } from '../reachable.js';
import type { BenchSuite } from '../report.js';
import { type BenchRow, rowFor, runConcurrent } from '../report.js';

const CheckCredit = defineMessage<{ id: number }>('bench.durable.CheckCredit');
const CreditChecked = defineMessage<{ id: number; ok: boolean }>('bench.durable.CreditChecked');

const brokerUrl = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Round trips per measurement at c=100; a tenth of it at c=1. */
const total = Number(process.env.BENCH_DURABLE_REQUESTS ?? 2_000);
const handWritten = 'hand-written pg + amqplib';
/** Deadlines far beyond the run: they fire later, into deleted queues. */
const timeoutMs = 60_000;
const poolSize = 60;
/** The contestants alternate this many times per concurrency. */
const rounds = 3;

interface Run {
  readonly elapsedMs: number;
  readonly latenciesMs: number[];
}

/** The round of median duration. */
const median = (runs: readonly Run[]): Run =>
  [...runs].sort((a, b) => a.elapsedMs - b.elapsedMs)[Math.floor(runs.length / 2)] as Run;

interface Setup {
  readonly schema: string;
  readonly pool: pg.Pool;
  readonly connection: amqp.ChannelModel;
}

const row = rowFor('rabbitmq + postgres');

/** The Tidings responder, shared by both Tidings contestants. */
async function tidingsServer(name: string): Promise<Endpoint> {
  const server = createEndpoint({
    name,
    transport: createRabbitMqTransport({ url: brokerUrl }),
    logger: silentLogger,
    concurrency: 32,
  });
  server.handle(CheckCredit, (check, ctx) => ctx.reply(CreditChecked, { id: check.id, ok: true }));
  await server.start();
  return server;
}

/** `request` with `continueWith`: the record and the request in a transaction, the reply's effect in another. */
async function durable(setup: Setup, server: string, count: number, concurrency: number) {
  const name = `bench-durable-${randomBytes(3).toString('hex')}`;
  const client = createEndpoint({
    name,
    transport: createRabbitMqTransport({ url: brokerUrl }),
    logger: silentLogger,
    concurrency: 32,
    persistence: createPostgresPersistence({ pool: setup.pool, schema: setup.schema }),
    routes: { [CheckCredit.name]: server },
  });
  const insert = `INSERT INTO "${setup.schema}".effects (id) VALUES ($1)`;
  const afterCheck = client.continuation('after-check', {
    reply: CreditChecked,
    onReply: async (_checked, state: { key: string }, ctx) => {
      await postgresSession(ctx).query(insert, [state.key]);
    },
  });
  await client.start();
  try {
    return await runConcurrent(count, concurrency, async (i) => {
      await client.request(
        CheckCredit,
        { id: i },
        { continueWith: afterCheck, state: { key: `${name}:${i}` }, timeoutMs },
      );
    });
  } finally {
    await client.stop();
    await deleteQueues(setup, [name, `${name}.${client.instanceId}`]);
  }
}

/** Plain `request`: an in-memory callback, no database. */
async function plain(server: string, count: number, concurrency: number) {
  const client = createEndpoint({
    name: `bench-plain-${randomBytes(3).toString('hex')}`,
    transport: createRabbitMqTransport({ url: brokerUrl }),
    logger: silentLogger,
    routes: { [CheckCredit.name]: server },
  });
  await client.start();
  try {
    return await runConcurrent(count, concurrency, async (i) => {
      await client.request(CheckCredit, { id: i }, { expect: CreditChecked });
    });
  } finally {
    await client.stop();
  }
}

/**
 * The baseline: the same transactions by hand. Per request: BEGIN, the request's row, an outbox
 * row, COMMIT; the request and a TTL'd deadline message published with confirms; the outbox row
 * marked. Per reply, on a shared queue: BEGIN, an inbox row, DELETE the request's row RETURNING
 * its state, the effect's row, COMMIT, ack, then the waiting promise. The responder is amqplib too.
 */
async function handWrittenRun(setup: Setup, count: number, concurrency: number) {
  const { schema, pool, connection } = setup;
  const tag = randomBytes(3).toString('hex');
  const [serverQueue, replies, deadlines] = [
    `raw-server-${tag}`,
    `raw-replies-${tag}`,
    `raw-deadlines-${tag}`,
  ];
  const channel = await connection.createConfirmChannel();
  const quorum = { durable: true, arguments: { 'x-queue-type': 'quorum' } };
  await channel.assertQueue(serverQueue, quorum);
  await channel.assertQueue(replies, quorum);
  await channel.assertQueue(deadlines, {
    durable: true,
    arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': replies },
  });
  const publish = (queue: string, body: Buffer, options: amqp.Options.Publish) =>
    new Promise<void>((resolve, reject) =>
      channel.sendToQueue(queue, body, { persistent: true, ...options }, (error) =>
        error ? reject(error) : resolve(),
      ),
    );
  // The responder.
  const responder = await connection.createConfirmChannel();
  await responder.prefetch(32);
  await responder.consume(serverQueue, (message) => {
    if (message === null) return;
    const check = JSON.parse(message.content.toString()) as { id: number };
    responder.sendToQueue(
      String(message.properties.replyTo),
      Buffer.from(JSON.stringify({ id: check.id, ok: true })),
      {
        persistent: true,
        correlationId: message.properties.correlationId,
        messageId: randomUUID(),
      },
      (error) => (error ? responder.nack(message) : responder.ack(message)),
    );
  });
  const waiting = new Map<string, () => void>();
  const consumer = await connection.createChannel();
  await consumer.prefetch(32);
  await consumer.consume(replies, (message) => {
    if (message === null) return;
    void (async () => {
      const correlationId = String(message.properties.correlationId);
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const inbox = await client.query(
          `INSERT INTO "${schema}".inbox (id) VALUES ($1) ON CONFLICT DO NOTHING`,
          [String(message.properties.messageId)],
        );
        if (inbox.rowCount === 1) {
          const taken = await client.query<{ state: string }>(
            `DELETE FROM "${schema}".requests WHERE id = $1 RETURNING state`,
            [correlationId],
          );
          const state = taken.rows[0]?.state;
          if (state !== undefined) {
            const { key } = JSON.parse(state) as { key: string };
            await client.query(`INSERT INTO "${schema}".effects (id) VALUES ($1)`, [key]);
          }
        }
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        consumer.nack(message);
        throw error;
      } finally {
        client.release();
      }
      consumer.ack(message);
      waiting.get(correlationId)?.();
      waiting.delete(correlationId);
    })();
  });
  try {
    return await runConcurrent(count, concurrency, async (i) => {
      const id = randomUUID();
      const outboxId = randomUUID();
      const request = Buffer.from(JSON.stringify({ id: i }));
      const state = JSON.stringify({ key: `raw-${tag}:${i}` });
      const replied = new Promise<void>((resolve) => waiting.set(id, resolve));
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(
          `INSERT INTO "${schema}".requests (id, state, deadline) VALUES ($1, $2, now() + interval '60 seconds')`,
          [id, state],
        );
        await client.query(`INSERT INTO "${schema}".outbox (id, body) VALUES ($1, $2)`, [
          outboxId,
          request,
        ]);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      await Promise.all([
        publish(serverQueue, request, { replyTo: replies, correlationId: id, messageId: id }),
        publish(deadlines, Buffer.from(id), { expiration: String(timeoutMs), correlationId: id }),
      ]);
      await pool.query(`UPDATE "${schema}".outbox SET dispatched_at = now() WHERE id = $1`, [
        outboxId,
      ]);
      await replied;
    });
  } finally {
    await responder.close();
    await consumer.close();
    await channel.close();
    await deleteQueues(setup, [serverQueue, replies, deadlines]);
  }
}

async function deleteQueues(setup: Setup, queues: readonly string[]): Promise<void> {
  for (const queue of queues) {
    const channel = await setup.connection.createChannel();
    channel.on('error', () => {});
    await channel.deleteQueue(queue).catch(() => {});
    await channel.close().catch(() => {});
  }
}

/**
 * Durable request/reply round trips per second on RabbitMQ and PostgreSQL at c=1 and c=100,
 * beside plain `request()` and a hand-written baseline doing the same transactions, same run.
 */
export const durableRequestsSuite: BenchSuite = {
  name: 'durable-requests',
  async unavailable() {
    if (!(await reachable(brokerUrl, 5672))) return 'no RabbitMQ broker (set RABBITMQ_URL)';
    if (!(await reachable(databaseUrl, 5432))) return 'no PostgreSQL (set DATABASE_URL)';
    return undefined;
  },
  async run() {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize });
    pool.on('error', () => {});
    const schema = `tidings_bench_${randomBytes(3).toString('hex')}`;
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await pool.query(`CREATE TABLE "${schema}".effects (id text PRIMARY KEY)`);
    await pool.query(`CREATE TABLE "${schema}".inbox (id text PRIMARY KEY)`);
    await pool.query(
      `CREATE TABLE "${schema}".requests (id text PRIMARY KEY, state text NOT NULL, deadline timestamptz NOT NULL)`,
    );
    await pool.query(
      `CREATE TABLE "${schema}".outbox (id uuid PRIMARY KEY, body bytea NOT NULL, dispatched_at timestamptz)`,
    );
    await createPostgresPersistence({ pool, schema }).install();
    const connection = await amqp.connect(brokerUrl, { noDelay: true });
    const setup: Setup = { schema, pool, connection };
    const serverName = `bench-durable-server-${randomBytes(3).toString('hex')}`;
    const server = await tidingsServer(serverName);
    const rows: BenchRow[] = [];
    try {
      for (const concurrency of [1, 100]) {
        const count = concurrency === 1 ? Math.max(50, Math.floor(total / 10)) : total;
        const scenario = `durable request/reply c=${concurrency}`;
        const runs = { raw: [] as Run[], ours: [] as Run[], callback: [] as Run[] };
        // Alternating rounds, each figure the median: the machine is shared, rates swing.
        for (let round = 0; round < rounds; round++) {
          runs.raw.push(await handWrittenRun(setup, count, concurrency));
          runs.ours.push(await durable(setup, serverName, count, concurrency));
          runs.callback.push(await plain(serverName, count, concurrency));
        }
        const [raw, ours, callback] = [median(runs.raw), median(runs.ours), median(runs.callback)];
        const note = (measured: Run[]) =>
          `median of ${rounds} alternating rounds (${measured
            .map((run) => ((count / run.elapsedMs) * 1000).toFixed(0))
            .join(', ')}/s)`;
        rows.push(
          {
            ...row(scenario, handWritten, count, raw.elapsedMs, raw.latenciesMs),
            note: note(runs.raw),
          },
          {
            ...row(scenario, 'tidings', count, ours.elapsedMs, ours.latenciesMs),
            note: note(runs.ours),
          },
          {
            ...row(
              `plain request() c=${concurrency}`,
              'tidings',
              count,
              callback.elapsedMs,
              callback.latenciesMs,
            ),
            note: `in-memory callback, no database: for scale; ${note(runs.callback)}`,
          },
        );
      }
    } finally {
      await server.stop();
      await deleteQueues(setup, [serverName, `${serverName}.${server.instanceId}`]);
      await connection.close();
      await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
      await pool.end();
    }
    return rows;
  },
};
