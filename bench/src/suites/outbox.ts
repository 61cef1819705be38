import { randomBytes, randomUUID } from 'node:crypto';
import { createEndpoint, defineMessage, type Endpoint, silentLogger } from '@tidings/core';
import { createPostgresPersistence, postgresSession } from '@tidings/persistence-postgres';
import { createRabbitMqTransport } from '@tidings/transport-rabbitmq';
import * as amqp from 'amqplib';
import pg from 'pg';
import { reachable } from '../reachable.js';
import type { BenchRow, BenchSuite } from '../report.js';

const PlaceOrder = defineMessage<{ id: number; sku: string }>('bench.outbox.PlaceOrder');
const OrderPlaced = defineMessage<{ id: number }>('bench.outbox.OrderPlaced');

const brokerUrl = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Messages handled per measurement. */
const total = Number(process.env.BENCH_OUTBOX_MESSAGES ?? 4_000);
/** The three contestants alternate this many times; each figure is the median round. */
const rounds = 3;
/** Messages handled at once, by Tidings and by the hand-written consumer alike. */
const concurrency = 16;
const poolSize = concurrency + 4;

const scenario = 'handle: inbox + write + send';
const noOutboxScenario = 'handle: write + send, no outbox';
const handWritten = 'hand-written pg + amqplib';

/** Counts statements sent to PostgreSQL (every `pool.query` and client query goes through here). */
let statements = 0;
const originalQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  statements++;
  return (originalQuery as (...a: unknown[]) => unknown).apply(this, args);
} as typeof originalQuery;

interface Measured {
  readonly perSecond: number;
  readonly statementsPerMessage: number;
  readonly peakConnections: number;
}

interface Setup {
  readonly schema: string;
  readonly pool: pg.Pool;
  readonly amqp: amqp.ChannelModel;
  readonly sink: string;
}

/** Fills `queue` with `total` PlaceOrder messages, as Tidings sends them (headers, message ids). */
async function fill(queue: string): Promise<void> {
  const sender = createEndpoint({
    name: `${queue}-sender`,
    sendOnly: true,
    transport: createRabbitMqTransport({ url: brokerUrl }),
    logger: silentLogger,
  });
  await sender.start();
  const sends: Promise<void>[] = [];
  for (let id = 0; id < total; id++) {
    sends.push(sender.send(PlaceOrder, { id, sku: 'sku-1' }, { to: queue }));
    if (sends.length === 500) await Promise.all(sends.splice(0));
  }
  await Promise.all(sends);
  await sender.stop();
}

/** Times the handling of a filled queue; samples the pool's connections meanwhile. */
async function timed(
  setup: Setup,
  handled: () => number,
  start: () => Promise<void>,
): Promise<Measured> {
  let peakConnections = 0;
  const sampler = setInterval(() => {
    peakConnections = Math.max(peakConnections, setup.pool.totalCount);
  }, 5);
  const before = statements;
  const started = performance.now();
  await start();
  while (handled() < total) await new Promise((resolve) => setTimeout(resolve, 2));
  const elapsedMs = performance.now() - started;
  clearInterval(sampler);
  return {
    perSecond: (total / elapsedMs) * 1000,
    statementsPerMessage: (statements - before) / total,
    peakConnections,
  };
}

async function tidings(setup: Setup, withOutbox: boolean): Promise<Measured> {
  const queue = `bench-outbox-${withOutbox ? 'on' : 'off'}-${randomBytes(3).toString('hex')}`;
  const sql = `INSERT INTO "${setup.schema}".orders (id, sku) VALUES ($1, $2)`;
  const make = (): Endpoint =>
    createEndpoint({
      name: queue,
      transport: createRabbitMqTransport({ url: brokerUrl }),
      logger: silentLogger,
      concurrency,
      routes: { [OrderPlaced.name]: setup.sink },
      recoverability: { errorQueue: `${queue}-error` },
      ...(withOutbox
        ? { persistence: createPostgresPersistence({ pool: setup.pool, schema: setup.schema }) }
        : {}),
    }).handle(PlaceOrder, async (order, ctx) => {
      const values = [`${queue}:${order.id}`, order.sku];
      // Without an outbox the write is a statement of its own, committed at once.
      if (withOutbox) await postgresSession(ctx).query(sql, values);
      else await setup.pool.query(sql, values);
      await ctx.send(OrderPlaced, { id: order.id });
    });
  // Start once to create the queue, fill it while stopped, then time from the start of receiving.
  const creator = make();
  await creator.start();
  await creator.stop();
  await fill(queue);
  const endpoint = make();
  try {
    return await timed(
      setup,
      () => endpoint.stats.handled,
      () => endpoint.start(),
    );
  } finally {
    await endpoint.stop();
    await deleteQueues(setup, [queue, `${queue}-error`, endpoint.instanceQueue as string]);
  }
}

/**
 * The baseline: what a careful developer writes by hand with amqplib and pg. One transaction per
 * message (inbox insert, the write, the outbox insert), then a confirmed publish, the outbox
 * update and the ack; `concurrency` messages at once.
 */
async function handWrittenConsumer(setup: Setup): Promise<Measured> {
  const queue = `bench-outbox-raw-${randomBytes(3).toString('hex')}`;
  const { schema, pool } = setup;
  const channel = await setup.amqp.createConfirmChannel();
  await channel.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await fill(queue);
  await channel.prefetch(concurrency);
  let handled = 0;
  const handle = async (message: amqp.ConsumeMessage) => {
    const messageId = String(message.properties.messageId);
    const order = JSON.parse(message.content.toString()) as { id: number; sku: string };
    const outgoingId = randomUUID();
    const body = Buffer.from(JSON.stringify({ id: order.id }));
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const inbox = await client.query(
        `INSERT INTO "${schema}".inbox (id) VALUES ($1) ON CONFLICT DO NOTHING`,
        [messageId],
      );
      if (inbox.rowCount === 0) {
        await client.query('ROLLBACK');
        channel.ack(message);
        return;
      }
      await client.query(`INSERT INTO "${schema}".orders (id, sku) VALUES ($1, $2)`, [
        `${queue}:${order.id}`,
        order.sku,
      ]);
      await client.query(`INSERT INTO "${schema}".outbox (id, body) VALUES ($1, $2)`, [
        outgoingId,
        body,
      ]);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      channel.nack(message);
      throw error;
    } finally {
      client.release();
    }
    await new Promise<void>((resolve, reject) =>
      channel.sendToQueue(setup.sink, body, { persistent: true, messageId: outgoingId }, (error) =>
        error ? reject(error) : resolve(),
      ),
    );
    await pool.query(`UPDATE "${schema}".outbox SET dispatched_at = now() WHERE id = $1`, [
      outgoingId,
    ]);
    channel.ack(message);
    handled++;
  };
  try {
    return await timed(
      setup,
      () => handled,
      async () => {
        await channel.consume(queue, (message) => {
          if (message !== null) void handle(message);
        });
      },
    );
  } finally {
    await channel.close();
    await deleteQueues(setup, [queue]);
  }
}

async function deleteQueues(setup: Setup, queues: readonly string[]): Promise<void> {
  for (const queue of queues) {
    const channel = await setup.amqp.createChannel();
    channel.on('error', () => {});
    await channel.deleteQueue(queue).catch(() => {});
    await channel.close().catch(() => {});
  }
}

const median = (values: readonly Measured[], key: keyof Measured) =>
  [...values].sort((a, b) => a[key] - b[key])[Math.floor(values.length / 2)]?.[key] ?? Number.NaN;

/**
 * The outbox on RabbitMQ and PostgreSQL: handled messages per second with the outbox, without
 * it, and for a hand-written consumer doing the same database work, in the same run.
 */
export const outboxSuite: BenchSuite = {
  name: 'outbox',
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
    await pool.query(`CREATE TABLE "${schema}".orders (id text PRIMARY KEY, sku text NOT NULL)`);
    await pool.query(`CREATE TABLE "${schema}".inbox (id text PRIMARY KEY)`);
    await pool.query(
      `CREATE TABLE "${schema}".outbox (id uuid PRIMARY KEY, body bytea NOT NULL, dispatched_at timestamptz)`,
    );
    await createPostgresPersistence({ pool, schema }).install();
    const connection = await amqp.connect(brokerUrl, { noDelay: true });
    const sink = `bench-outbox-sink-${randomBytes(3).toString('hex')}`;
    const declare = await connection.createChannel();
    await declare.assertQueue(sink, { durable: true });
    await declare.close();
    const setup: Setup = { schema, pool, amqp: connection, sink };
    const results = { outbox: [] as Measured[], plain: [] as Measured[], raw: [] as Measured[] };
    try {
      for (let round = 0; round < rounds; round++) {
        results.raw.push(await handWrittenConsumer(setup));
        results.plain.push(await tidings(setup, false));
        results.outbox.push(await tidings(setup, true));
        const purge = await connection.createChannel();
        await purge.purgeQueue(sink);
        await purge.close();
      }
    } finally {
      await deleteQueues(setup, [sink]);
      await connection.close();
      await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
      await pool.end();
    }
    const note = (measured: Measured[]) => {
      const rates = measured.map((m) => m.perSecond.toFixed(0)).join(', ');
      return `median of ${rounds} alternating rounds (${rates}/s); ${median(measured, 'statementsPerMessage').toFixed(1)} SQL statements/msg, ${median(measured, 'peakConnections')} connections at peak (pool ${poolSize}, concurrency ${concurrency})`;
    };
    const outboxRate = median(results.outbox, 'perSecond');
    const plainRate = median(results.plain, 'perSecond');
    const row = (
      scenarioName: string,
      impl: string,
      measured: Measured[],
      extra = '',
    ): BenchRow => ({
      transport: 'rabbitmq + postgres',
      scenario: scenarioName,
      impl,
      messages: total,
      perSecond: median(measured, 'perSecond'),
      note: `${note(measured)}${extra}`,
    });
    return [
      row(scenario, handWritten, results.raw),
      row(
        scenario,
        'tidings',
        results.outbox,
        `; ${(outboxRate / plainRate).toFixed(2)}× the rate without the outbox`,
      ),
      row(noOutboxScenario, 'tidings', results.plain),
    ];
  },
};
