import {
  createEndpoint,
  type Endpoint,
  type Handler,
  type Logger,
  type PayloadOf,
  type Transport,
} from '@tidings/core';
import { runUntilSignal, tracingFromEnv, transportFromEnv } from '@tidings/sample-support';
import { OrderAccepted, PlaceOrder } from './messages.js';

/** Accepts every order and replies with its total. The reply goes wherever the sender asked. */
export const placeOrder: Handler<PayloadOf<typeof PlaceOrder>> = async (order, ctx) => {
  console.log(`[server] PlaceOrder ${order.orderId} (${order.amount}) → replying OrderAccepted`);
  await ctx.reply(OrderAccepted, { orderId: order.orderId, total: order.amount * 1.2 });
};

/** Sales: handles PlaceOrder. */
export function createSalesEndpoint(transport: Transport, logger?: Logger): Endpoint {
  const sales = createEndpoint({
    name: 'Sales',
    transport,
    ...(logger ? { logger } : {}),
    // TIDINGS_TRACE=1: OpenTelemetry spans, printed as a tree by `npm start`.
    ...tracingFromEnv('server'),
  });
  const replyDelayMs = Number(process.env.REPLY_DELAY_MS ?? 0);
  sales.handle(PlaceOrder, async (order, ctx) => {
    // The restart demo slows Sales down so the client can die with requests pending.
    if (replyDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, replyDelayMs));
    await placeOrder(order, ctx);
    process.send?.('replied');
  });
  return sales;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const sales = createSalesEndpoint(await transportFromEnv('tidings-full-duplex'));
  await sales.start();
  console.log('[server] Sales is running');
  // Tell a launcher the queue exists, so its client does not send into nothing.
  process.send?.('ready');
  await runUntilSignal(() => sales.stop());
}
