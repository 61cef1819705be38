import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createPostgresPersistence } from '@tidings/persistence-postgres';
import pg from 'pg';
import { durableSchema } from './durable-client.js';

/**
 * What a durable request survives: the client commits two durable requests and awaits them, and
 * is killed while a slow Sales works on them. Started again, it awaits nothing, yet the replies
 * that waited in its endpoint's queue run the continuation, once each, with the saved state.
 */
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const env = { ...process.env, REPLY_DELAY_MS: process.env.REPLY_DELAY_MS ?? '800' };
const exited = (child: ChildProcess) =>
  new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
const message = (child: ChildProcess, text: string) =>
  new Promise<void>((resolve) => {
    const onMessage = (received: unknown) => {
      if (received !== text) return;
      child.off('message', onMessage);
      resolve();
    };
    child.on('message', onMessage);
  });

const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
});
await pool.query(`DROP SCHEMA IF EXISTS "${durableSchema}" CASCADE`);
await createPostgresPersistence({ pool, schema: durableSchema }).install();
await pool.query(
  `CREATE TABLE "${durableSchema}".accepted_orders (order_id text PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL, runs int NOT NULL DEFAULT 1)`,
);

const server = fork(here('./server.js'), { env, stdio: 'inherit' });
await message(server, 'ready');
let replies = 0;
server.on('message', (received) => {
  if (received === 'replied') replies++;
});

const first = fork(here('./durable-client.js'), {
  env: { ...env, CLIENT_MODE: 'request-and-die' },
  stdio: 'inherit',
});
await message(first, 'pending');
first.kill('SIGKILL');
await exited(first);
console.log('[demo] killed the client while it awaited 2 durable requests');

while (replies < 2) await new Promise((resolve) => setTimeout(resolve, 20));
console.log('[demo] Sales replied to both; starting the client again');

const second = fork(here('./durable-client.js'), {
  env: { ...env, CLIENT_MODE: 'listen' },
  stdio: 'inherit',
});
const code = await exited(second);
server.kill('SIGTERM');
await exited(server);
const { rows } = await pool.query<{ n: number }>(
  `SELECT count(*)::int AS n FROM "${durableSchema}".accepted_orders WHERE runs = 1`,
);
console.log(
  `[demo] ${rows[0]?.n} of 2 orders recorded exactly once by the continuation, although the process that awaited them was killed`,
);
// Kept for a look (`SELECT * FROM durable_sample.accepted_orders`), unless asked to tidy up.
if (process.env.DURABLE_SAMPLE_DROP === '1') {
  await pool.query(`DROP SCHEMA IF EXISTS "${durableSchema}" CASCADE`);
}
await pool.end();
process.exitCode = code;
