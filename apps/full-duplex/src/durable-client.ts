import { createEndpoint, type Endpoint, silentLogger, type Transport } from '@tidings/core';
import { createPostgresPersistence, postgresSession } from '@tidings/persistence-postgres';
import { transportFromEnv } from '@tidings/sample-support';
import pg from 'pg';
import { OrderAccepted, PlaceOrder, routes } from './messages.js';

/** Where the demo keeps its tables: recreated by the launcher. */
export const durableSchema = process.env.DURABLE_SAMPLE_SCHEMA ?? 'durable_sample';

/**
 * The client of the durable request demo: `WebDurable`, whose continuation `after-order-accepted`
 * records each accepted order in PostgreSQL, in the transaction that takes the reply. The row
 * counts its writes (`runs`), so a continuation run twice would show.
 */
export function createDurableClient(transport: Transport, pool: pg.Pool) {
  const client: Endpoint = createEndpoint({
    name: 'WebDurable',
    instanceId: 'web-1',
    transport,
    routes,
    logger: silentLogger,
    persistence: createPostgresPersistence({ pool, schema: durableSchema }),
  });
  const afterOrderAccepted = client.continuation('after-order-accepted', {
    reply: OrderAccepted,
    onReply: async (accepted, state: { orderId: string; customer: string }, ctx) => {
      await postgresSession(ctx).query(
        `INSERT INTO "${durableSchema}".accepted_orders (order_id, customer, total) VALUES ($1, $2, $3)
         ON CONFLICT (order_id) DO UPDATE SET runs = accepted_orders.runs + 1`,
        [state.orderId, state.customer, accepted.total],
      );
      console.log(
        `[client] continuation: order ${state.orderId} of ${state.customer} accepted, total ${accepted.total}`,
      );
    },
    onTimeout: async (state) => {
      console.log(`[client] continuation: no answer for ${state.orderId} in time`);
    },
  });
  return { client, afterOrderAccepted };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const pool = new pg.Pool({
    connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  });
  pool.on('error', () => {});
  const { client, afterOrderAccepted } = createDurableClient(
    await transportFromEnv('tidings-full-duplex'),
    pool,
  );
  await client.start();
  if (process.env.CLIENT_MODE === 'request-and-die') {
    for (const [orderId, customer, amount] of [
      ['durable-1', 'ada', 10],
      ['durable-2', 'grace', 20],
    ] as const) {
      // The record and the request commit together; the await is the convenience on top.
      void client
        .request(
          PlaceOrder,
          { orderId, amount },
          { continueWith: afterOrderAccepted, state: { orderId, customer }, timeoutMs: 60_000 },
        )
        .then((accepted) => console.log(`[client] await: ${accepted.orderId} answered`));
      console.log(`[client] durable request for ${orderId} under way; awaiting its reply…`);
    }
    // Tell the launcher once both records are committed and their requests left the outbox for
    // Sales' queue. Killed between the two, the requests would wait for this client's restart
    // (its outbox sweep sends them), and the launcher waits for Sales' replies before restarting.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const { rows } = await pool.query<{ requests: number; undispatched: number }>(
        `SELECT (SELECT count(*)::int FROM "${durableSchema}".tidings_requests) AS requests,
                (SELECT count(*)::int FROM "${durableSchema}".tidings_outbox
                  WHERE dispatched_at IS NULL) AS undispatched`,
      );
      if ((rows[0]?.requests === 2 && rows[0]?.undispatched === 0) || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    process.send?.('pending');
    await new Promise(() => {}); // waits to be killed
  } else {
    // Restarted: nothing awaits here; the replies that waited in WebDurable run the continuation.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows } = await pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${durableSchema}".tidings_requests`,
      );
      if (rows[0]?.n === 0 || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const { rows } = await pool.query<{ order_id: string; runs: number }>(
      `SELECT order_id, runs FROM "${durableSchema}".accepted_orders ORDER BY order_id`,
    );
    for (const row of rows) {
      console.log(`[client] ledger: ${row.order_id} recorded by ${row.runs} continuation run(s)`);
    }
    await client.stop();
    await pool.end();
  }
}
