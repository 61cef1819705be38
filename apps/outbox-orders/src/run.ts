import { createEndpoint, type Transport } from '@tidings/core';
import type pg from 'pg';
import { OrderPlaced, PlaceOrder } from './messages.js';
import { createOrderService, placeOrderDirectly } from './order-service.js';

export interface RunOptions {
  readonly transport: Transport;
  readonly pool: pg.Pool;
  /** Recreated at the start, so that every run starts empty. */
  readonly schema: string;
  /** Orders sent as PlaceOrder commands; as many again are placed directly. */
  readonly orders: number;
  readonly log?: (line: string) => void;
}

export interface RunSummary {
  readonly ordersStored: number;
  readonly eventsReceived: number;
  readonly distinctEvents: number;
  readonly undispatched: number;
}

/**
 * Web sends PlaceOrder commands (each one twice, as a retrying client would), Orders stores them
 * and publishes OrderPlaced, Billing counts the events; then orders placed directly through
 * `endpoint.transaction`. Returns what the database and Billing saw.
 */
export async function runSample(options: RunOptions): Promise<RunSummary> {
  const { transport, pool, schema } = options;
  const log = options.log ?? (() => {});
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  const service = createOrderService({ transport, pool, schema });
  await service.install();

  const events: string[] = [];
  const billing = createEndpoint({ name: 'Billing', transport }).handle(OrderPlaced, (event) => {
    events.push(event.orderId);
  });
  const web = createEndpoint({
    name: 'Web',
    transport,
    sendOnly: true,
    routes: { [PlaceOrder.name]: 'Orders' },
  });
  await billing.start();
  await service.endpoint.start();
  await web.start();
  const expected = options.orders * 2;
  try {
    for (let i = 1; i <= options.orders; i++) {
      const order = { orderId: `cmd-${i}`, customer: `customer-${i % 3}`, amount: 10 * i };
      // The same message id twice: the inbox acknowledges the copy without running the handler.
      await web.send(PlaceOrder, order, { messageId: `place-${order.orderId}` });
      await web.send(PlaceOrder, order, { messageId: `place-${order.orderId}` });
    }
    for (let i = 1; i <= options.orders; i++) {
      await placeOrderDirectly(service.endpoint, schema, {
        orderId: `direct-${i}`,
        customer: 'web',
        amount: i,
      });
    }
    const deadline = Date.now() + 30_000;
    while (new Set(events).size < expected || service.endpoint.stats.inFlight > 0) {
      if (Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    await web.stop();
    await service.endpoint.stop();
    await billing.stop();
  }
  const stored = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${schema}".orders`,
  );
  const pending = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${schema}".tidings_outbox WHERE dispatched_at IS NULL`,
  );
  const summary: RunSummary = {
    ordersStored: stored.rows[0]?.n ?? 0,
    eventsReceived: events.length,
    distinctEvents: new Set(events).size,
    undispatched: pending.rows[0]?.n ?? 0,
  };
  log(
    `${options.orders} orders sent twice as commands, ${options.orders} placed directly: ${summary.ordersStored} rows, ${summary.distinctEvents} OrderPlaced events at Billing (${summary.eventsReceived} received), ${summary.undispatched} left undispatched`,
  );
  return summary;
}
