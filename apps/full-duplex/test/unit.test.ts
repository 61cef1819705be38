import { createTestContext, createTestEndpoint, replyMessage } from '@tidings/testing';
import { describe, expect, it } from 'vitest';
import { runClient } from '../src/client.ts';
import { OrderAccepted, PlaceOrder } from '../src/messages.ts';
import { placeOrder } from '../src/server.ts';

// Unit tests with @tidings/testing: no transport, no processes.
describe('Sales handler', () => {
  it('replies OrderAccepted with the total', async () => {
    const ctx = createTestContext({ message: PlaceOrder, endpointName: 'Sales' });
    await placeOrder({ orderId: 'a-1', amount: 10 }, ctx);
    expect(ctx.repliesOf(OrderAccepted).map((r) => r.payload)).toEqual([
      { orderId: 'a-1', total: 12 },
    ]);
  });
});

describe('client flow', () => {
  it('sends orders and awaits quotes', async () => {
    const bus = createTestEndpoint({ routes: { [PlaceOrder.name]: 'Sales' } }).when(
      PlaceOrder,
      (order) => replyMessage(OrderAccepted, { orderId: order.orderId, total: order.amount * 2 }),
    );
    // Every reply would come through the reply handler, the awaited ones too: pretend they all
    // did, or the client waits out its deadline for them.
    const durable = new Set(['order-1', 'order-2', 'quote-1', 'quote-2']);
    await runClient(bus, 2, durable);
    expect(bus.sentOf(PlaceOrder).map((s) => s.payload.orderId)).toEqual([
      'order-1',
      'order-2',
      'quote-1',
      'quote-2',
    ]);
    expect(bus.requestsOf(PlaceOrder).map((r) => r.reply)).toMatchObject([
      { kind: 'message', body: { orderId: 'quote-1', total: 10 } },
      { kind: 'message', body: { orderId: 'quote-2', total: 20 } },
    ]);
  });
});
