import {
  createEndpoint,
  type Endpoint,
  type HandlerContext,
  type PayloadOf,
  type Transport,
} from '@tidings/core';
import { createPostgresPersistence, postgresSession } from '@tidings/persistence-postgres';
import type pg from 'pg';
import { OrderPlaced, PlaceOrder } from './messages.js';

/** The service's own table, beside the outbox table that `install()` creates. */
export function ordersTableSql(schema: string): string {
  return `CREATE SCHEMA IF NOT EXISTS "${schema}";
CREATE TABLE IF NOT EXISTS "${schema}".orders (
  id text PRIMARY KEY,
  customer text NOT NULL,
  amount numeric NOT NULL,
  placed_at timestamptz NOT NULL DEFAULT now()
);`;
}

/**
 * The handler: the order row, the inbox record and the OrderPlaced event commit in one
 * transaction. A PlaceOrder received twice inserts once and publishes once.
 */
export function placeOrder(schema: string) {
  return async (order: PayloadOf<typeof PlaceOrder>, ctx: HandlerContext): Promise<void> => {
    await postgresSession(ctx).query(
      `INSERT INTO "${schema}".orders (id, customer, amount) VALUES ($1, $2, $3)`,
      [order.orderId, order.customer, order.amount],
    );
    await ctx.publish(OrderPlaced, { orderId: order.orderId, amount: order.amount });
  };
}

export interface OrderServiceOptions {
  readonly transport: Transport;
  readonly pool: pg.Pool;
  readonly schema: string;
}

/** The Orders endpoint with the outbox; `install` creates its tables. */
export function createOrderService(options: OrderServiceOptions): {
  endpoint: Endpoint;
  install(): Promise<void>;
} {
  const persistence = createPostgresPersistence({ pool: options.pool, schema: options.schema });
  const endpoint = createEndpoint({
    name: 'Orders',
    transport: options.transport,
    persistence,
  }).handle(PlaceOrder, placeOrder(options.schema));
  return {
    endpoint,
    async install() {
      await options.pool.query(ordersTableSql(options.schema));
      await persistence.install();
    },
  };
}

/**
 * The same work outside a handler, as an HTTP route would do it: the row and the event commit
 * together through `endpoint.transaction`.
 */
export function placeOrderDirectly(
  endpoint: Endpoint,
  schema: string,
  order: PayloadOf<typeof PlaceOrder>,
): Promise<void> {
  return endpoint.transaction(async (scope) => {
    await postgresSession(scope).query(
      `INSERT INTO "${schema}".orders (id, customer, amount) VALUES ($1, $2, $3)`,
      [order.orderId, order.customer, order.amount],
    );
    await scope.publish(OrderPlaced, { orderId: order.orderId, amount: order.amount });
  });
}
