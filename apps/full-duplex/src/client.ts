import { createEndpoint, type Endpoint, type Logger, type Transport } from '@tidings/core';
import { tracingFromEnv, transportFromEnv } from '@tidings/sample-support';
import { OrderAccepted, PlaceOrder, routes } from './messages.js';

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
    ...tracingFromEnv('client'),
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
  // The reply handler sees every reply, the awaited ones too: wait for all of them, so that
  // nothing prints after the summary.
  const deadline = Date.now() + 10_000;
  while (durable.size < 2 * count && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const orders = [...durable].filter((id) => id.startsWith('order-')).length;
  if (orders < count) throw new Error(`Only ${orders} of ${count} durable replies arrived.`);
  console.log(
    `[client] done: ${count} sent orders answered through the reply handler; ` +
      `${count} awaited quotes answered to their callers, and the reply handler saw those ` +
      `${count} too (it sees every reply of its type, by design)`,
  );
}

/** For the restart demo: send, start requests, tell the launcher, and wait to be killed. */
async function sendAndDie(client: Endpoint, count: number): Promise<void> {
  for (let i = 1; i <= count; i++) {
    await client.send(PlaceOrder, { orderId: `order-${i}`, amount: i * 10 });
    console.log(`[client] sent PlaceOrder order-${i} (reply handler will take the reply)`);
  }
  for (let i = 1; i <= count; i++) {
    const orderId = `quote-${i}`;
    // The callback form: `sent` resolves once the request is with the transport.
    const sent = client.send(PlaceOrder, { orderId, amount: i * 5 });
    sent.register((reply) => console.log(`[client] callback: ${orderId} answered (${reply.kind})`));
    await sent;
    console.log(`[client] callback for ${orderId} is waiting, in memory…`);
  }
  process.send?.('pending');
  await new Promise(() => {});
}

/** For the restart demo: handle whatever replies are waiting, then stop. */
async function listen(expected: number, seen: Set<string>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (seen.size < expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  console.log(`[client] after restart: ${seen.size} replies handled by the reply handler`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const count = Number(process.env.ORDERS ?? 3);
  const mode = process.env.CLIENT_MODE ?? 'run';
  const seen = new Set<string>();
  const client = createClientEndpoint(await transportFromEnv('tidings-full-duplex'), (id) =>
    seen.add(id),
  );
  await client.start();
  try {
    if (mode === 'send-and-die') await sendAndDie(client, count);
    else if (mode === 'listen') await listen(Number(process.env.EXPECT_REPLIES ?? count), seen);
    else await runClient(client, count, seen);
  } finally {
    await client.stop();
  }
}
