import { createEndpoint, type Endpoint, type Logger, type Transport } from '@tidings/core';
import { OrderAccepted, PlaceOrder, routes } from './messages.js';
import { transportFromEnv } from './transport-from-env.js';

/**
 * The client. Its OrderAccepted handler is the durable way to take replies: they land in the
 * endpoint's queue and are handled even after a restart. `request` is the callback way: the
 * caller awaits the reply, which lives only in this process's memory.
 */
export function createClientEndpoint(
  transport: Transport,
  onDurableReply: (orderId: string) => void,
  logger?: Logger,
): Endpoint {
  const client = createEndpoint({
    name: 'Web',
    instanceId: 'web-1',
    transport,
    routes,
    ...(logger ? { logger } : {}),
  });
  client.handle(OrderAccepted, (accepted) => {
    // Replies to `request` reach this handler too, right after the awaiting caller got them.
    console.log(
      `[client] reply handler: order ${accepted.orderId} accepted, total ${accepted.total}`,
    );
    onDurableReply(accepted.orderId);
  });
  return client;
}

/** Sends `count` orders the durable way and `count` with `await request`, printing every reply. */
export async function runClient(
  client: Endpoint,
  count: number,
  durable: Set<string>,
): Promise<void> {
  for (let i = 1; i <= count; i++) {
    const orderId = `order-${i}`;
    await client.send(PlaceOrder, { orderId, amount: i * 10 });
    console.log(`[client] sent PlaceOrder ${orderId}; the reply handler will take the reply`);
  }
  for (let i = 1; i <= count; i++) {
    const orderId = `quote-${i}`;
    const accepted = await client.request(
      PlaceOrder,
      { orderId, amount: i * 5 },
      { expect: OrderAccepted, timeoutMs: 10_000 },
    );
    console.log(
      `[client] await request: order ${accepted.orderId} accepted, total ${accepted.total}`,
    );
  }
  const sent = (id: string) => id.startsWith('order-');
  const deadline = Date.now() + 10_000;
  while ([...durable].filter(sent).length < count && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const arrived = [...durable].filter(sent).length;
  if (arrived < count) throw new Error(`Only ${arrived} of ${count} durable replies arrived.`);
  console.log(`[client] done: ${count} replies by handler, ${count} by await request`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const count = Number(process.env.ORDERS ?? 3);
  const durable = new Set<string>();
  const client = createClientEndpoint(await transportFromEnv(), (id) => durable.add(id));
  await client.start();
  try {
    await runClient(client, count, durable);
  } finally {
    await client.stop();
  }
}
