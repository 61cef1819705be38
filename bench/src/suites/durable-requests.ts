import { randomBytes, randomUUID } from 'node:crypto';
import { createEndpoint, defineMessage, type Endpoint, silentLogger } from '@tidings/core';
import { createPostgresPersistence, postgresSession } from '@tidings/persistence-postgres';
import { createRabbitMqTransport } from '@tidings/transport-rabbitmq';
import * as amqp from 'amqplib';
import pg from 'pg';
import { reachable } from '../reachable.js';
import {
  type BenchRow,
  type BenchSuite,
  type Contestant,
  interleavedBlocks,
  measureBlock,
  rowFor,
} from '../report.js';

const CheckCredit = defineMessage<{ id: number }>('bench.durable.CheckCredit');
const CreditChecked = defineMessage<{ id: number; ok: boolean }>('bench.durable.CreditChecked');

const brokerUrl = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const handWritten = 'hand-written pg + amqplib';
const plainImpl = 'tidings, plain request()';
/**
 * Deadlines beyond the whole run, so none fires into a contestant still measuring; they fire
 * later into deleted queues and are dropped.
 */
const timeoutMs = 900_000;
const poolSize = 60;
/**
 * Blocks per contestant, taken in turns (`interleavedBlocks`): at c=1 a block of 25 takes
 * 0.1–0.5 s here, short enough that a slow spell of the shared machine falls on every side, and
 * 80 of them give each side 2,000 round trips. At c=100 a block is ten times the concurrency, so
 * that its ramp up and down (the last requests run with fewer beside them) is a small part of it.
 */
const plans = [
  { concurrency: 1, blocks: Number(process.env.BENCH_DURABLE_C1_BLOCKS ?? 80), blockSize: 25 },
  { concurrency: 100, blocks: Number(process.env.BENCH_DURABLE_C100_BLOCKS ?? 8), blockSize: 1000 },
].filter(
  // BENCH_DURABLE_CONCURRENCY=1 runs only c=1 (e.g. while profiling).
  (plan) =>
    process.env.BENCH_DURABLE_CONCURRENCY === undefined ||
    process.env.BENCH_DURABLE_CONCURRENCY.split(',').includes(String(plan.concurrency)),
);

/** Counts statements sent to PostgreSQL: every `pool.query` and client query goes through here. */
let statements = 0;
const originalQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  statements++;
  return (originalQuery as (...a: unknown[]) => unknown).apply(this, args);
} as typeof originalQuery;

interface Setup {
  readonly schema: string;
  readonly pool: pg.Pool;
  readonly connection: amqp.ChannelModel;
  /** The Tidings responder's queue, for both Tidings contestants. */
  readonly server: string;
}

/** A contestant open for a whole scenario; it also counts the SQL statements of its blocks. */
interface OpenContestant extends Contestant {
  readonly statements: { count: number };
  close(): Promise<void>;
}

/** Runs `count` requests numbered from `first`, `concurrency` at once, as one measured block. */
function block(
  concurrency: number,
  counted: { count: number },
  request: (index: number) => Promise<void>,
) {
  return (first: number, count: number) => {
    const before = statements;
    return measureBlock(async () => {
      const latenciesMs: number[] = [];
      let next = first;
      const worker = async () => {
        while (next < first + count) {
          const index = next++;
          const started = performance.now();
          await request(index);
          latenciesMs.push(performance.now() - started);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
      counted.count += statements - before;
      return latenciesMs;
    });
  };
}

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
async function durable(setup: Setup, concurrency: number): Promise<OpenContestant> {
  const name = `bench-durable-${randomBytes(3).toString('hex')}`;
  const client = createEndpoint({
    name,
    transport: createRabbitMqTransport({ url: brokerUrl }),
    logger: silentLogger,
    concurrency: 32,
    persistence: createPostgresPersistence({ pool: setup.pool, schema: setup.schema }),
    routes: { [CheckCredit.name]: setup.server },
  });
  const insert = `INSERT INTO "${setup.schema}".effects (id) VALUES ($1)`;
  const afterCheck = client.continuation('after-check', {
    reply: CreditChecked,
    onReply: async (_checked, state: { key: string }, ctx) => {
      await postgresSession(ctx).query(insert, [state.key]);
    },
  });
  await client.start();
  const counted = { count: 0 };
  return {
    impl: 'tidings',
    statements: counted,
    runBlock: block(concurrency, counted, async (i) => {
      await client.request(
        CheckCredit,
        { id: i },
        { continueWith: afterCheck, state: { key: `${name}:${i}` }, timeoutMs },
      );
    }),
    close: async () => {
      await client.stop();
      await deleteQueues(setup, [name, `${name}.${client.instanceId}`]);
    },
  };
}

/** Plain `request`: an in-memory callback, no database. For scale. */
async function plain(setup: Setup, concurrency: number): Promise<OpenContestant> {
  const client = createEndpoint({
    name: `bench-plain-${randomBytes(3).toString('hex')}`,
    transport: createRabbitMqTransport({ url: brokerUrl }),
    logger: silentLogger,
    routes: { [CheckCredit.name]: setup.server },
  });
  await client.start();
  const counted = { count: 0 };
  return {
    impl: plainImpl,
    statements: counted,
    runBlock: block(concurrency, counted, async (i) => {
      await client.request(CheckCredit, { id: i }, { expect: CreditChecked });
    }),
    close: () => client.stop(),
  };
}

/**
 * The baseline: the same transactions by hand. Per request: BEGIN, the request's row, an outbox
 * row, COMMIT; the request and a TTL'd deadline message published with confirms; the outbox row
 * marked. Per reply, on a shared queue: BEGIN, an inbox row, DELETE the request's row RETURNING
 * its state, the effect's row, COMMIT, ack, then the waiting promise. The responder is amqplib too.
 */
async function handWrittenRequester(setup: Setup, concurrency: number): Promise<OpenContestant> {
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
  const counted = { count: 0 };
  return {
    impl: handWritten,
    statements: counted,
    runBlock: block(concurrency, counted, async (i) => {
      const id = randomUUID();
      const outboxId = randomUUID();
      const request = Buffer.from(JSON.stringify({ id: i }));
      const state = JSON.stringify({ key: `raw-${tag}:${i}` });
      const replied = new Promise<void>((resolve) => waiting.set(id, resolve));
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(
          `INSERT INTO "${schema}".requests (id, state, deadline) VALUES ($1, $2, now() + interval '${timeoutMs / 1000} seconds')`,
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
    }),
    close: async () => {
      await responder.close();
      await consumer.close();
      await channel.close();
      await deleteQueues(setup, [serverQueue, replies, deadlines]);
    },
  };
}

async function deleteQueues(setup: Pick<Setup, 'connection'>, queues: readonly string[]) {
  for (const queue of queues) {
    const channel = await setup.connection.createChannel();
    channel.on('error', () => {});
    await channel.deleteQueue(queue).catch(() => {});
    await channel.close().catch(() => {});
  }
}

/**
 * Durable request/reply round trips per second on RabbitMQ and PostgreSQL at c=1 and c=100,
 * beside a hand-written baseline doing the same transactions and plain `request()` for scale. All
 * three stay open for a whole concurrency and take turns in short blocks (`interleavedBlocks`),
 * so the shared machine's changing speed moves them alike; each adds up its own blocks.
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
    const serverName = `bench-durable-server-${randomBytes(3).toString('hex')}`;
    const server = await tidingsServer(serverName);
    const setup: Setup = { schema, pool, connection, server: serverName };
    const row = rowFor('rabbitmq + postgres');
    const rows: BenchRow[] = [];
    try {
      for (const plan of plans) {
        const { concurrency } = plan;
        const scenario = `durable request/reply c=${concurrency}`;
        const contestants: OpenContestant[] = [];
        try {
          contestants.push(await handWrittenRequester(setup, concurrency));
          contestants.push(await durable(setup, concurrency));
          contestants.push(await plain(setup, concurrency));
          const measured = await interleavedBlocks(row, contestants, {
            scenario,
            blocks: plan.blocks,
            blockSize: plan.blockSize,
            warmUpBlocks: 2,
            whose: 'requester+responder',
          });
          const messages = plan.blocks * plan.blockSize;
          // Warm-up blocks count statements too: per round trip over every block run.
          const runs = messages + 2 * plan.blockSize;
          rows.push(
            ...measured.map((measuredRow, i) => {
              const sql = `${((contestants[i]?.statements.count ?? 0) / runs).toFixed(1)} SQL statements/round trip`;
              return measuredRow.impl === plainImpl
                ? {
                    ...measuredRow,
                    scenario: `plain request() c=${concurrency}`,
                    note: `in-memory callback, no database: for scale; ${measuredRow.note}; ${sql}`,
                  }
                : { ...measuredRow, note: `${measuredRow.note}; ${sql}` };
            }),
          );
        } finally {
          for (const contestant of contestants) await contestant.close().catch(() => {});
        }
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
