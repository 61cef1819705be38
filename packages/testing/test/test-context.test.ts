import {
  createEndpoint,
  createInMemoryTransport,
  defineMessage,
  type Handler,
  type HandlerContext,
  Headers,
  NoRouteError,
  silentLogger,
  UsageError,
} from '@tidings/core';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { createTestContext } from '../src/index.ts';

const PlaceOrder = defineMessage<{ orderId: string; amount: number }>('sales.PlaceOrder');
const OrderAccepted = defineMessage<{ orderId: string }>('sales.OrderAccepted');
const OrderPlaced = defineMessage<{ orderId: string }>('sales.OrderPlaced');
const ChargeCard = defineMessage<{ orderId: string; amount: number }>('billing.ChargeCard');
enum Status {
  Ok = 0,
  Rejected = 1,
}

/** A real handler, as an application would write it. */
const placeOrder: Handler<{ orderId: string; amount: number }> = async (order, ctx) => {
  if (order.amount <= 0) {
    await ctx.reply(Status.Rejected, { headers: { 'x-reason': 'amount' } });
    return;
  }
  await ctx.send(ChargeCard, { orderId: order.orderId, amount: order.amount });
  await ctx.publish(
    OrderPlaced,
    { orderId: order.orderId },
    { messageId: `placed-${order.orderId}` },
  );
  await ctx.reply(
    OrderAccepted,
    { orderId: order.orderId },
    { headers: { 'x-by': ctx.endpointName } },
  );
};

describe('createTestContext', () => {
  it('is a HandlerContext: a real handler runs with it and its replies are recorded with options', async () => {
    const ctx = createTestContext({ message: PlaceOrder, endpointName: 'Sales' });
    expectTypeOf(ctx).toExtend<HandlerContext>();
    await placeOrder({ orderId: 'a', amount: 5 }, ctx);
    expect(ctx.replies).toEqual([
      {
        kind: 'message',
        definition: OrderAccepted,
        messageType: 'sales.OrderAccepted',
        payload: { orderId: 'a' },
        options: { headers: { 'x-by': 'Sales' } },
      },
    ]);
    const accepted = ctx.repliesOf(OrderAccepted);
    expectTypeOf(accepted[0]?.payload).toEqualTypeOf<{ orderId: string } | undefined>();
    expect(accepted.map((r) => r.payload.orderId)).toEqual(['a']);
    expect(ctx.replyCodes).toEqual([]);
  });

  it('records return-code replies', async () => {
    const ctx = createTestContext({ message: PlaceOrder });
    await placeOrder({ orderId: 'a', amount: 0 }, ctx);
    expect(ctx.replyCodes).toEqual([Status.Rejected]);
    expect(ctx.replies).toEqual([
      { kind: 'code', code: Status.Rejected, options: { headers: { 'x-reason': 'amount' } } },
    ]);
    expect(ctx.sent).toEqual([]);
    expect(ctx.published).toEqual([]);
  });

  it('records sends and publishes with their options, typed per definition', async () => {
    const ctx = createTestContext({ message: PlaceOrder });
    await placeOrder({ orderId: 'b', amount: 7 }, ctx);
    expect(ctx.sentOf(ChargeCard).map((s) => s.payload)).toEqual([{ orderId: 'b', amount: 7 }]);
    expect(ctx.sent[0]?.destination).toBeUndefined();
    const [placed] = ctx.publishedOf(OrderPlaced);
    expect(placed).toMatchObject({
      intent: 'publish',
      messageType: 'sales.OrderPlaced',
      payload: { orderId: 'b' },
      messageId: 'placed-b',
      options: { messageId: 'placed-b' },
    });
  });

  it('with routes, a send without a route fails with NoRouteError; `to` is recorded', async () => {
    const ctx = createTestContext({ routes: { [ChargeCard.name]: 'Billing' } });
    await ctx.send(ChargeCard, { orderId: 'a', amount: 1 });
    await ctx.send(OrderPlaced, { orderId: 'a' }, { to: 'Audit' });
    expect(ctx.sent.map((s) => s.destination)).toEqual(['Billing', 'Audit']);
    await expect(ctx.send(OrderAccepted, { orderId: 'a' })).rejects.toBeInstanceOf(NoRouteError);
  });

  it('exposes ids and headers: defaults chain from the message id, overrides and extra headers apply', () => {
    const plain = createTestContext({ message: PlaceOrder });
    expect(plain.messageType).toBe('sales.PlaceOrder');
    expect(plain.correlationId).toBe(plain.messageId);
    expect(plain.conversationId).toBe(plain.messageId);
    expect(plain.replyTo).toBe('TestSender');
    expect(plain.endpointName).toBe('TestEndpoint');
    expect(plain.signal.aborted).toBe(false);
    expect(plain.headers).toMatchObject({
      [Headers.MessageId]: plain.messageId,
      [Headers.MessageType]: 'sales.PlaceOrder',
      [Headers.ReplyTo]: 'TestSender',
      [Headers.Intent]: 'send',
    });

    const ctx = createTestContext({
      messageType: 'custom.Type',
      messageId: 'm-1',
      correlationId: 'c-1',
      conversationId: 'conv-1',
      replyTo: 'Web.web-1',
      headers: { 'x-tenant': 'acme' },
    });
    expect(ctx).toMatchObject({
      messageId: 'm-1',
      correlationId: 'c-1',
      conversationId: 'conv-1',
      messageType: 'custom.Type',
      replyTo: 'Web.web-1',
    });
    expect(ctx.headers).toMatchObject({
      'x-tenant': 'acme',
      [Headers.CorrelationId]: 'c-1',
      [Headers.ConversationId]: 'conv-1',
      [Headers.ReplyTo]: 'Web.web-1',
    });
  });

  it('a message with no reply-to address: reply throws UsageError, as on a real endpoint', async () => {
    const ctx = createTestContext({ message: PlaceOrder, replyTo: undefined });
    expect(ctx.headers[Headers.ReplyTo]).toBeUndefined();
    await expect(ctx.reply(Status.Ok)).rejects.toBeInstanceOf(UsageError);
    await expect(ctx.reply(OrderAccepted, { orderId: 'a' })).rejects.toThrow('no reply-to address');
  });

  it('refuses what a real context refuses: non-integer codes, reserved headers', async () => {
    const ctx = createTestContext();
    await expect(ctx.reply(1.5)).rejects.toThrow('must be an integer');
    await expect(
      ctx.publish(OrderPlaced, { orderId: 'a' }, { headers: { 'tidings.intent': 'x' } }),
    ).rejects.toThrow('reserved');
    expect(ctx.replies).toEqual([]);
  });

  it('passes a given signal through, so stop-deadline handling can be tested', () => {
    const controller = new AbortController();
    const ctx = createTestContext({ signal: controller.signal });
    controller.abort();
    expect(ctx.signal.aborted).toBe(true);
  });

  it('records what the same handler does on a real endpoint', async () => {
    const transport = createInMemoryTransport();
    const routes = { [PlaceOrder.name]: 'Sales', [ChargeCard.name]: 'Billing' };
    const server = createEndpoint({ name: 'Sales', transport, logger: silentLogger, routes });
    server.handle(PlaceOrder, placeOrder);
    const billing = createEndpoint({ name: 'Billing', transport, logger: silentLogger });
    const charged: unknown[] = [];
    billing.handle(ChargeCard, (charge) => void charged.push(charge));
    const client = createEndpoint({ name: 'Web', transport, logger: silentLogger, routes });
    await Promise.all([server.start(), billing.start(), client.start()]);
    try {
      const real = await client.request(
        PlaceOrder,
        { orderId: 'r', amount: 2 },
        { expect: OrderAccepted },
      );
      const ctx = createTestContext({ message: PlaceOrder, routes });
      await placeOrder({ orderId: 'r', amount: 2 }, ctx);
      expect(ctx.repliesOf(OrderAccepted).map((r) => r.payload)).toEqual([real]);
      expect(ctx.sentOf(ChargeCard).map((s) => s.destination)).toEqual(['Billing']);
      await expect.poll(() => charged).toEqual(ctx.sentOf(ChargeCard).map((s) => s.payload));
    } finally {
      await Promise.all([client.stop(), billing.stop(), server.stop()]);
    }
  });
});
