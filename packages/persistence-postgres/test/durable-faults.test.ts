import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPostgresPersistence } from '../src/index.ts';
import { childNodes, type Node, superviseUntil } from './child-nodes.ts';
import { databaseUrl, testPool, testSchema } from './database.ts';

// Durable requests under SIGKILL, with a real PostgreSQL and RabbitMQ, then the learning transport
// (docs/adr/0015-durable-requests.md): requesting processes (test/fixtures/durable-node.mjs, on
// the built packages) kill themselves at each point between two durable steps and are restarted;
// a server is killed before replying so that deadlines fire; in the scale-out run one of two
// requesting instances dies for good. Every request must end in exactly one effect: its
// continuation's or its onTimeout's, and no record may be left.

const brokerUrl = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const fixture = fileURLToPath(new URL('./fixtures/durable-node.mjs', import.meta.url));
const root = fileURLToPath(new URL('../../..', import.meta.url));

/** Requests per kill point, as issue 20 asks; DURABLE_FAULT_REQUESTS lowers it for a quick run. */
const total = Number(process.env.DURABLE_FAULT_REQUESTS ?? 1000);
/** A child dies on its this-many-th arrival at the point: several kills per run of `total`. */
const killEvery = Math.max(10, Math.floor(total / 5));

const { pool } = testPool({ max: 20 });
let database: Awaited<ReturnType<typeof testSchema>>;
const queues: string[] = [];
const nodes = childNodes(fixture, { DATABASE_URL: databaseUrl, BROKER_URL: brokerUrl });
/** The learning transport's folder, shared by the processes of a run. */
let learningDir = '';

beforeAll(async () => {
  // The children run the built packages: build what they load from the current sources.
  for (const pkg of ['core', 'transport-rabbitmq', 'transport-learning', 'persistence-postgres']) {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: `${root}/packages/${pkg}` });
  }
  learningDir = await mkdtemp(join(tmpdir(), 'tidings-durable-'));
  database = await testSchema(pool);
  await createPostgresPersistence({ pool, schema: database.schema }).install();
}, 120_000);

afterAll(async () => {
  nodes.killAll();
  if (learningDir !== '') await rm(learningDir, { recursive: true, force: true });
  await database?.drop();
  await pool.end();
  const connection = await amqp.connect(brokerUrl, { noDelay: true });
  connection.on('error', () => {});
  for (const queue of queues) {
    const channel = await connection.createChannel();
    channel.on('error', () => {});
    await channel.deleteQueue(queue).catch(() => {});
    await channel.close().catch(() => {});
  }
  await connection.close();
});

/** Effects per request id: how many ids have one, the most any has, those with two kinds. */
async function effects(prefix: string) {
  const result = await pool.query<{ ids: number; max: number | null; both: number }>(
    `SELECT count(*)::int AS ids, max(total)::int AS max, count(*) FILTER (WHERE kinds > 1)::int AS both
       FROM (SELECT split_part(key, ':', 3) AS id, sum(n) AS total, count(*) AS kinds
               FROM "${database.schema}".ledger
              WHERE key LIKE $1 OR key LIKE $2
              GROUP BY 1) per_id`,
    [`${prefix}:reply:%`, `${prefix}:timeout:%`],
  );
  return result.rows[0] as { ids: number; max: number | null; both: number };
}

async function countKeys(pattern: string) {
  const result = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${database.schema}".ledger WHERE key LIKE $1`,
    [pattern],
  );
  return result.rows[0]?.n ?? 0;
}

/** Every request ended once, its record gone, and what the requesters committed has left. */
async function settled(prefix: string, requested = total) {
  const ended = await effects(prefix);
  if (process.env.DURABLE_FAULT_TRACE) {
    console.log(prefix, ended, await records(prefix), await undispatched(prefix));
  }
  return (
    ended.ids === requested && (await records(prefix)) === 0 && (await undispatched(prefix)) === 0
  );
}

async function records(prefix: string) {
  const result = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${database.schema}".tidings_requests WHERE endpoint = $1`,
    [`${prefix}-Client`],
  );
  return result.rows[0]?.n ?? 0;
}

async function undispatched(prefix: string) {
  const result = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${database.schema}".tidings_outbox WHERE endpoint = $1 AND dispatched_at IS NULL`,
    [`${prefix}-Client`],
  );
  return result.rows[0]?.n ?? 0;
}

function track(prefix: string, instances: readonly string[]) {
  const client = `${prefix}-Client`;
  const server = `${prefix}-Credit`;
  queues.push(client, server, `${server}.s`, `${prefix}-error`);
  for (const instance of instances) queues.push(`${client}.${instance}`);
}

for (const transport of ['rabbitmq', 'learning'] as const)
  describe(`durable requests under SIGKILL with PostgreSQL and ${transport} (${total} requests per point)`, () => {
    const results: Record<string, unknown>[] = [];
    afterAll(() => {
      // The figures docs/outbox.md#durable-requests quotes.
      console.log(`durable fault results (${transport}): ${JSON.stringify(results)}`);
    });

    /** Every request ended once, nothing is left, and the last client's waits are back to zero. */
    async function expectExactlyOnce(prefix: string, requested: number, last: Node) {
      expect(await effects(prefix)).toEqual({ ids: requested, max: 1, both: 0 });
      expect(await records(prefix)).toBe(0);
      expect(await undispatched(prefix)).toBe(0);
      const stats = await last.stop();
      expect(stats).toMatchObject({ awaited: 0, pending: 0 });
    }

    const start = (prefix: string, env: Record<string, string>) => () =>
      nodes.start({
        PREFIX: prefix,
        SCHEMA: database.schema,
        TRANSPORT: transport,
        LEARNING_DIR: learningDir,
        ...env,
      });

    for (const point of ['after-commit', 'after-dispatch', 'in-continuation'] as const) {
      it(`requester killed ${point}: every continuation once`, { timeout: 180_000 }, async () => {
        const prefix = `${transport[0]}-${point}-${randomUUID().slice(0, 6)}`;
        track(prefix, ['a']);
        const server = start(prefix, { ROLE: 'server', INSTANCE: 's' })();
        await server.ready;
        try {
          const client = start(prefix, {
            ROLE: 'client',
            INSTANCE: 'a',
            KILL_AT: point,
            KILL_EVERY: String(killEvery),
            FROM: '0',
            TO: String(total),
            TIMEOUT_MS: '60000',
          });
          const first = client();
          const { kills, node } = await superviseUntil(first, client, () => settled(prefix), {
            deadlineMs: 150_000,
          });
          expect(kills).toBeGreaterThan(0);
          await node.done;
          await expectExactlyOnce(prefix, total, node);
          const timeouts = await countKeys(`${prefix}:timeout:%`);
          results.push({ point, total, kills, timeouts });
        } finally {
          await server.stop();
        }
      });
    }

    it('server killed before replying: every deadline runs onTimeout once, late replies change nothing', {
      timeout: 180_000,
    }, async () => {
      const prefix = `${transport[0]}-server-${randomUUID().slice(0, 6)}`;
      track(prefix, ['a']);
      const server = start(prefix, {
        ROLE: 'server',
        INSTANCE: 's',
        KILL_AT: 'server-before-reply',
        KILL_EVERY: String(killEvery),
      });
      const first = server();
      await first.ready;
      const client = start(prefix, {
        ROLE: 'client',
        INSTANCE: 'a',
        FROM: '0',
        TO: String(total),
        TIMEOUT_MS: '2000',
      })();
      // Back only after the deadlines of what it held have passed: those requests time out.
      const { kills, node } = await superviseUntil(first, server, () => settled(prefix), {
        deadlineMs: 150_000,
        restartAfterMs: 3_000,
      });
      expect(kills).toBeGreaterThan(0);
      await client.done;
      const timeouts = await countKeys(`${prefix}:timeout:%`);
      expect(timeouts).toBeGreaterThan(0);
      await expectExactlyOnce(prefix, total, client);
      await node.stop();
      results.push({ point: 'server-before-reply', total, kills, timeouts });
    });

    it('scale-out: one of two requesters dies for good; the other completes all its requests', {
      timeout: 180_000,
    }, async () => {
      const prefix = `${transport[0]}-scale-${randomUUID().slice(0, 6)}`;
      track(prefix, ['a', 'b']);
      const server = start(prefix, { ROLE: 'server', INSTANCE: 's' })();
      const half = Math.floor(total / 2);
      const survivor = start(prefix, {
        ROLE: 'client',
        INSTANCE: 'a',
        FROM: '0',
        TO: String(half),
        TIMEOUT_MS: '60000',
      })();
      const doomed = start(prefix, {
        ROLE: 'client',
        INSTANCE: 'b',
        KILL_AT: 'after-dispatch',
        KILL_EVERY: String(Math.max(10, Math.floor(half / 2))),
        FROM: String(half),
        TO: String(total),
        TIMEOUT_MS: '60000',
      })();
      await Promise.all([server.ready, survivor.ready, doomed.ready]);
      expect((await doomed.exit).signal).toBe('SIGKILL');
      await survivor.done;
      // What b committed before it died: its records, and the effects of its ids.
      const deadline = Date.now() + 120_000;
      while ((await records(prefix)) > 0 || (await undispatched(prefix)) > 0) {
        if (Date.now() > deadline) throw new Error('the scale-out run did not finish in time');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const ended = await effects(prefix);
      expect(ended.max).toBe(1);
      expect(ended.both).toBe(0);
      expect(ended.ids).toBeGreaterThan(half);
      // b's requests whose continuation ran on a, after b was gone.
      const completedByA = await pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${database.schema}".ledger WHERE key LIKE $1 AND split_part(key, ':', 3)::int >= $2`,
        [`${prefix}:by-a:%`, half],
      );
      expect(completedByA.rows[0]?.n).toBeGreaterThan(0);
      await expectExactlyOnce(prefix, ended.ids, survivor);
      await server.stop();
      results.push({
        point: 'scale-out',
        total,
        requested: ended.ids,
        completedByTheOther: completedByA.rows[0]?.n,
      });
    });
  });
