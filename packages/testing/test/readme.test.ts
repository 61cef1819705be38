import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineMessage, type Endpoint, type Handler } from '@tidings/core';
import { describe, expect, it } from 'vitest';
import { createTestContext, createTestEndpoint, replyMessage } from '../src/index.ts';

// The README's examples, verbatim below; the first test checks they are still the README's.
const PlaceOrder = defineMessage<{ orderId: string; amount: number }>('sales.PlaceOrder');
const OrderAccepted = defineMessage<{ orderId: string }>('sales.OrderAccepted');
const OrderPlaced = defineMessage<{ orderId: string }>('sales.OrderPlaced');
enum Status {
  Ok = 0,
  Rejected = 1,
}
const ChargeCard = defineMessage<{ orderId: string; amount: number }>('billing.ChargeCard');

const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
const squash = (code: string) => code.replace(/\s+/g, '').replace(/,([)\]}])/g, '$1');

describe('README examples', () => {
  it('contain the code these tests run', () => {
    const snippets = [
      `.when(PlaceOrder, { amount: 0 }, Status.Rejected)`,
      `.when(PlaceOrder, (order) => order.amount > 1000, Status.Rejected)`,
      `expect(bus.sentOf(PlaceOrder).map((s) => s.payload)).toEqual([{ orderId: 'a-1', amount: 5 }]);`,
      `if (order.amount <= 0) return ctx.reply(Status.Rejected);`,
      `await ctx.send(ChargeCard, order, { to: 'Billing' });`,
      `expect(rejected.replyCodes).toEqual([Status.Rejected]);`,
    ];
    for (const snippet of snippets) expect(squash(readme)).toContain(squash(snippet));
  });

  it('testing code that sends and requests', async () => {
    async function checkout(bus: Endpoint, orderId: string, amount: number) {
      const accepted = await bus.request(
        PlaceOrder,
        { orderId, amount },
        { expect: OrderAccepted },
      );
      await bus.publish(OrderPlaced, { orderId: accepted.orderId });
      return accepted.orderId;
    }

    const bus = createTestEndpoint()
      .when(PlaceOrder, { amount: 0 }, Status.Rejected)
      .when(PlaceOrder, (order) => order.amount > 1000, Status.Rejected)
      .when(PlaceOrder, (order) => replyMessage(OrderAccepted, { orderId: order.orderId }));

    expect(await checkout(bus, 'a-1', 5)).toBe('a-1');
    expect(bus.sentOf(PlaceOrder).map((s) => s.payload)).toEqual([{ orderId: 'a-1', amount: 5 }]);
    expect(bus.publishedOf(OrderPlaced).map((p) => p.payload)).toEqual([{ orderId: 'a-1' }]);
    await expect(checkout(bus, 'a-2', 0)).rejects.toThrow('received return code 1');
  });

  it('testing handlers', async () => {
    const placeOrder: Handler<{ orderId: string; amount: number }> = async (order, ctx) => {
      if (order.amount <= 0) return ctx.reply(Status.Rejected);
      await ctx.send(ChargeCard, order, { to: 'Billing' });
      await ctx.publish(OrderPlaced, { orderId: order.orderId });
      await ctx.reply(
        OrderAccepted,
        { orderId: order.orderId },
        { headers: { 'x-by': ctx.endpointName } },
      );
    };

    const ctx = createTestContext({ message: PlaceOrder, endpointName: 'Sales' });
    await placeOrder({ orderId: 'a-1', amount: 5 }, ctx);

    expect(ctx.repliesOf(OrderAccepted).map((r) => r.payload)).toEqual([{ orderId: 'a-1' }]);
    expect(ctx.replies[0]?.options).toEqual({ headers: { 'x-by': 'Sales' } });
    expect(ctx.sentOf(ChargeCard)[0]?.destination).toBe('Billing');
    expect(ctx.publishedOf(OrderPlaced)).toHaveLength(1);

    const rejected = createTestContext({ message: PlaceOrder });
    await placeOrder({ orderId: 'a-2', amount: 0 }, rejected);
    expect(rejected.replyCodes).toEqual([Status.Rejected]);
  });
});
