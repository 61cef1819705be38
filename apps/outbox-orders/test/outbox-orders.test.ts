import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInMemoryTransport } from '@tidings/core';
import { transportFromEnv } from '@tidings/sample-support';
import { createTestContext } from '@tidings/testing';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { OrderPlaced, PlaceOrder } from '../src/messages.ts';
import { placeOrder } from '../src/order-service.ts';
import { runSample } from '../src/run.ts';

const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

describe('the handler, with a stub session', () => {
  it('inserts the order on the session and publishes OrderPlaced', async () => {
    const queries: unknown[][] = [];
    const session = { query: async (...args: unknown[]) => void queries.push(args) };
    const ctx = createTestContext({ message: PlaceOrder, session });
    await placeOrder('shop')({ orderId: 'o-1', customer: 'c', amount: 5 }, ctx);
    expect(queries).toEqual([[expect.stringContaining('"shop".orders'), ['o-1', 'c', 5]]]);
    expect(ctx.publishedOf(OrderPlaced).map((p) => p.payload)).toEqual([
      { orderId: 'o-1', amount: 5 },
    ]);
  });
});

describe('the sample against PostgreSQL', () => {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 20 });
  pool.on('error', () => {});
  const schema = `outbox_sample_${randomUUID().slice(0, 8)}`;
  afterAll(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  });

  it('stores every order once and publishes each once, commands sent twice included', async () => {
    const summary = await runSample({
      transport: createInMemoryTransport(),
      pool,
      schema,
      orders: 5,
    });
    expect(summary).toEqual({
      ordersStored: 10,
      eventsReceived: 10,
      distinctEvents: 10,
      undispatched: 0,
    });
  });

  it('does the same on the learning transport, as `npm start` runs it', async () => {
    const rootDir = await mkdtemp(join(tmpdir(), 'outbox-orders-'));
    try {
      const transport = await transportFromEnv('outbox-orders-test', {
        TIDINGS_TRANSPORT: 'learning',
        TIDINGS_LEARNING_DIR: rootDir,
      });
      const summary = await runSample({ transport, pool, schema, orders: 3 });
      expect(summary).toMatchObject({ ordersStored: 6, distinctEvents: 6, undispatched: 0 });
    } finally {
      await rm(rootDir, { recursive: true, force: true });
    }
  });
});
