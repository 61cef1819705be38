import { transportFromEnv } from '@tidings/sample-support';
import pg from 'pg';
import { runSample } from './run.js';

// One command, with PostgreSQL up (scripts/services.sh): npx nx run @tidings/example-outbox-orders:start
// DATABASE_URL picks the server; TIDINGS_TRANSPORT the transport (learning by default).
const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  max: 20,
});
pool.on('error', (error) => console.warn(`PostgreSQL connection lost: ${error.message}`));
try {
  const summary = await runSample({
    transport: await transportFromEnv('outbox-orders'),
    pool,
    schema: process.env.OUTBOX_SAMPLE_SCHEMA ?? 'outbox_sample',
    orders: 5,
    log: (line) => console.log(line),
  });
  if (summary.ordersStored !== 10 || summary.distinctEvents !== 10 || summary.undispatched !== 0) {
    console.error('Not every order was stored and published once.');
    process.exitCode = 1;
  }
} finally {
  await pool.end();
}
