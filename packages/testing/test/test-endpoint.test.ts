import {
  defineMessage,
  type Endpoint,
  EndpointStateError,
  Headers,
  NoRouteError,
  type Reply,
  ReplyMismatchError,
  RequestAbortedError,
  RequestTimeoutError,
  SendOnlyEndpointError,
  TidingsError,
  UsageError,
  ValidationError,
} from '@tidings/core';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { createTestEndpoint, NoCannedReplyError, replyMessage } from '../src/index.ts';

const PlaceOrder = defineMessage<{ orderId: string; amount: number; customer?: { tier: string } }>(
  'sales.PlaceOrder',
);
const OrderAccepted = defineMessage<{ orderId: string; by?: string }>('sales.OrderAccepted');
const OrderRejected = defineMessage<{ orderId: string }>('sales.OrderRejected');
const OrderPlaced = defineMessage<{ orderId: string }>('sales.OrderPlaced');
enum Status {
  Ok = 0,
  Rejected = 1,
}

/** Code under test: it only knows the Endpoint interface. */
async function checkout(bus: Endpoint, orderId: string, amount: number): Promise<string> {
  const accepted = await bus.request(PlaceOrder, { orderId, amount }, { expect: OrderAccepted });
  await bus.publish(OrderPlaced, { orderId: accepted.orderId }, { headers: { 'x-src': 'web' } });
  return accepted.by ?? 'nobody';
}

describe('createTestEndpoint', () => {
  it('stands in for an Endpoint: code under test requests and publishes through it', async () => {
    const bus = createTestEndpoint().when(PlaceOrder, (order) =>
      replyMessage(OrderAccepted, { orderId: order.orderId, by: 'sales-1' }),
    );
    expectTypeOf(bus).toExtend<Endpoint>();
    expect(await checkout(bus, 'a', 5)).toBe('sales-1');
    expect(bus.requestsOf(PlaceOrder).map((r) => r.payload)).toEqual([{ orderId: 'a', amount: 5 }]);
    expect(bus.publishedOf(OrderPlaced)).toMatchObject([
      { payload: { orderId: 'a' }, options: { headers: { 'x-src': 'web' } } },
    ]);
  });

  it('records sends with payload, options, destination and message id', async () => {
    const bus = createTestEndpoint();
    await bus.send(PlaceOrder, { orderId: 'a', amount: 1 }, { to: 'Sales', delayMs: 100 });
    await bus.send(PlaceOrder, { orderId: 'b', amount: 2 }, { messageId: 'm-2' });
    const sent = bus.sentOf(PlaceOrder);
    expectTypeOf(sent[0]?.payload).toEqualTypeOf<
      { orderId: string; amount: number; customer?: { tier: string } } | undefined
    >();
    expect(sent.map((s) => [s.payload.orderId, s.destination, s.options])).toEqual([
      ['a', 'Sales', { to: 'Sales', delayMs: 100 }],
      ['b', undefined, { messageId: 'm-2' }],
    ]);
    expect(sent[1]?.messageId).toBe('m-2');
    expect(sent[0]?.messageId).toMatch(/^[0-9a-f-]{36}$/);
    expect(bus.sent).toHaveLength(2);
    expect(bus.requests).toEqual([]);
  });

  it('with routes, a send without a route fails with NoRouteError as on a real endpoint', async () => {
    const bus = createTestEndpoint({ routes: { [PlaceOrder.name]: 'Sales' } });
    await bus.send(PlaceOrder, { orderId: 'a', amount: 1 });
    expect(bus.sent[0]?.destination).toBe('Sales');
    await expect(bus.send(OrderPlaced, { orderId: 'a' })).rejects.toBeInstanceOf(NoRouteError);
    await bus.send(OrderPlaced, { orderId: 'a' }, { to: 'Elsewhere' });
    expect(bus.sent.map((s) => s.destination)).toEqual(['Sales', 'Elsewhere']);
  });

  it('answers with the first registration whose matcher accepts the payload, in registration order', async () => {
    const bus = createTestEndpoint()
      .when(
        PlaceOrder,
        { customer: { tier: 'gold' } },
        replyMessage(OrderAccepted, { orderId: 'gold' }),
      )
      .when(PlaceOrder, (o) => o.amount > 100, Status.Rejected)
      .when(PlaceOrder, { amount: 5 }, replyMessage(OrderAccepted, { orderId: 'five' }))
      .when(PlaceOrder, replyMessage(OrderAccepted, { orderId: 'anything' }))
      .when(PlaceOrder, replyMessage(OrderAccepted, { orderId: 'never: an earlier one matches' }));

    const ask = (payload: { orderId: string; amount: number; customer?: { tier: string } }) =>
      bus.request(PlaceOrder, payload);
    // The partial object matches nested properties; gold wins even above 100 (registered first).
    expect(await ask({ orderId: 'x', amount: 500, customer: { tier: 'gold' } })).toMatchObject({
      kind: 'message',
      body: { orderId: 'gold' },
    });
    expect(await ask({ orderId: 'x', amount: 500 })).toMatchObject({ kind: 'code', code: 1 });
    expect(await ask({ orderId: 'x', amount: 5 })).toMatchObject({ body: { orderId: 'five' } });
    expect(await ask({ orderId: 'x', amount: 6, customer: { tier: 'silver' } })).toMatchObject({
      body: { orderId: 'anything' },
    });
  });

  it('a reply may be computed from the request, synchronously or not', async () => {
    const bus = createTestEndpoint().when(PlaceOrder, async (order, request) =>
      replyMessage(OrderAccepted, { orderId: order.orderId, by: request.messageId }),
    );
    const reply = await bus.request(
      PlaceOrder,
      { orderId: 'q', amount: 1 },
      { expect: OrderAccepted, messageId: 'req-1' },
    );
    expect(reply).toEqual({ orderId: 'q', by: 'req-1' });
  });

  it('a reply function that throws fails the request with its error (e.g. to play a timeout)', async () => {
    const bus = createTestEndpoint().when(PlaceOrder, () => {
      throw new RequestTimeoutError(PlaceOrder.name, 5000, 'c-1');
    });
    await expect(
      bus.request(PlaceOrder, { orderId: 'a', amount: 1 }, { expect: OrderAccepted }),
    ).rejects.toBeInstanceOf(RequestTimeoutError);
    expect(bus.stats.pendingRequests).toBe(0);
  });

  it("return codes: expect 'code' gives the number; no expect gives the Reply with its headers", async () => {
    const bus = createTestEndpoint().when(PlaceOrder, Status.Ok);
    const code = await bus.request(PlaceOrder, { orderId: 'a', amount: 1 }, { expect: 'code' });
    expectTypeOf(code).toEqualTypeOf<number>();
    expect(code).toBe(Status.Ok);
    const reply = await bus.request(PlaceOrder, { orderId: 'a', amount: 1 }, { messageId: 'r-9' });
    expectTypeOf(reply).toEqualTypeOf<Reply>();
    expect(reply).toMatchObject({
      kind: 'code',
      code: 0,
      headers: {
        [Headers.ReturnCode]: '0',
        [Headers.CorrelationId]: 'r-9',
        [Headers.Intent]: 'reply',
      },
    });
    expect(bus.requests.map((r) => r.expect)).toEqual(['code', 'any']);
  });

  describe('a canned reply that does not fit the expected kind rejects with ReplyMismatchError', () => {
    const bus = createTestEndpoint()
      .when(PlaceOrder, { orderId: 'code' }, Status.Rejected)
      .when(PlaceOrder, { orderId: 'other' }, replyMessage(OrderRejected, { orderId: 'other' }))
      .when(PlaceOrder, { orderId: 'message' }, replyMessage(OrderAccepted, { orderId: 'm' }));

    it('a code where a message is expected', async () => {
      const error = await bus
        .request(PlaceOrder, { orderId: 'code', amount: 1 }, { expect: OrderAccepted })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ReplyMismatchError);
      expect((error as ReplyMismatchError).message).toBe(
        "Expected a reply of message 'sales.OrderAccepted' but received return code 1.",
      );
    });

    it('another message type than expected', async () => {
      await expect(
        bus.request(PlaceOrder, { orderId: 'other', amount: 1 }, { expect: OrderAccepted }),
      ).rejects.toThrow("message 'sales.OrderAccepted' but received message 'sales.OrderRejected'");
    });

    it("a message where 'code' is expected", async () => {
      const error = await bus
        .request(PlaceOrder, { orderId: 'message', amount: 1 }, { expect: 'code' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ReplyMismatchError);
      expect(error).toMatchObject({
        code: 'TIDINGS_REPLY_MISMATCH',
        expected: 'a return code',
        received: "message 'sales.OrderAccepted'",
      });
    });
  });

  it('a canned reply that is neither a code nor a message is a UsageError', async () => {
    const bus = createTestEndpoint()
      .when(PlaceOrder, { amount: 1 }, 1.5)
      .when(PlaceOrder, () => ({ orderId: 'forgot replyMessage' }) as never);
    await expect(bus.request(PlaceOrder, { orderId: 'a', amount: 1 })).rejects.toThrow(
      'must be an integer',
    );
    await expect(bus.request(PlaceOrder, { orderId: 'a', amount: 2 })).rejects.toThrow(
      'replyMessage(Definition, payload)',
    );
  });

  it('a canned message is validated by the expected definition schema, as a real reply is', async () => {
    const Parsed = defineMessage('sales.Parsed', {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: (value: unknown) =>
          typeof (value as { n?: unknown }).n === 'number'
            ? { value: { n: (value as { n: number }).n, parsed: true } }
            : { issues: [{ message: 'n must be a number', path: ['n'] }] },
      },
    } as const);
    const bus = createTestEndpoint()
      .when(PlaceOrder, { orderId: 'ok' }, replyMessage(Parsed, { n: 1 } as never))
      .when(PlaceOrder, { orderId: 'bad' }, replyMessage(Parsed, { n: 'x' } as never));
    expect(await bus.request(PlaceOrder, { orderId: 'ok', amount: 1 }, { expect: Parsed })).toEqual(
      { n: 1, parsed: true },
    );
    await expect(
      bus.request(PlaceOrder, { orderId: 'bad', amount: 1 }, { expect: Parsed }),
    ).rejects.toBeInstanceOf(ValidationError);
  });

  it('no canned reply: NoCannedReplyError names the message type and the payload', async () => {
    const bus = createTestEndpoint();
    const none = await bus.request(PlaceOrder, { orderId: 'zz', amount: 3 }).catch((e) => e);
    expect(none).toBeInstanceOf(NoCannedReplyError);
    expect(none).toBeInstanceOf(UsageError);
    expect(none).toBeInstanceOf(TidingsError);
    expect(none).toMatchObject({
      code: 'TIDINGS_USAGE',
      messageType: 'sales.PlaceOrder',
      payload: { orderId: 'zz', amount: 3 },
    });
    expect(none.message).toContain(`'sales.PlaceOrder'`);
    expect(none.message).toContain('{"orderId":"zz","amount":3}');
    expect(none.message).toContain('no reply is registered');

    bus.when(PlaceOrder, { orderId: 'other' }, Status.Ok);
    await expect(bus.request(PlaceOrder, { orderId: 'zz', amount: 3 })).rejects.toThrow(
      "none of the 1 replies registered for 'sales.PlaceOrder' matches",
    );
  });

  it('the callback form: send(...).register(callback, state) gets the Reply and the state', async () => {
    const bus = createTestEndpoint()
      .when(PlaceOrder, replyMessage(OrderAccepted, { orderId: 'cb' }))
      .when(OrderPlaced, Status.Ok);
    const result = await bus
      .send(PlaceOrder, { orderId: 'cb', amount: 1 })
      .register(
        (reply, state: string) =>
          reply.kind === 'message' ? `${state}:${(reply.body as { orderId: string }).orderId}` : '',
        'got',
      );
    expect(result).toBe('got:cb');
    expect(bus.sent).toHaveLength(1);
    expect(bus.requests).toHaveLength(1);
    await expect(
      bus.send(OrderPlaced, { orderId: 'x' }).register(() => 'unused', undefined, {
        expect: OrderAccepted,
      }),
    ).rejects.toBeInstanceOf(ReplyMismatchError);
  });

  it('register() after the send was dispatched is a UsageError, as on a real endpoint', async () => {
    const bus = createTestEndpoint().when(PlaceOrder, Status.Ok);
    const sending = bus.send(PlaceOrder, { orderId: 'a', amount: 1 });
    await sending;
    expect(() => sending.register(() => {})).toThrow(UsageError);
  });

  it('a signal aborted before the call sends nothing and rejects with RequestAbortedError', async () => {
    const bus = createTestEndpoint().when(PlaceOrder, Status.Ok);
    await expect(
      bus.request(
        PlaceOrder,
        { orderId: 'a', amount: 1 },
        { signal: AbortSignal.abort(new Error('user left')) },
      ),
    ).rejects.toBeInstanceOf(RequestAbortedError);
    expect(bus.sent).toEqual([]);
    expect(bus.requests).toEqual([]);
  });

  it('send-only: sends and publishes, refuses request, register and handle with SendOnlyEndpointError', async () => {
    const bus = createTestEndpoint({ sendOnly: true, name: 'Web' });
    expect(bus.inputQueue).toBeUndefined();
    expect(bus.instanceId).toBeUndefined();
    await bus.send(PlaceOrder, { orderId: 'a', amount: 1 });
    await bus.publish(OrderPlaced, { orderId: 'a' });
    expect(() => bus.request(PlaceOrder, { orderId: 'a', amount: 1 })).toThrow(
      SendOnlyEndpointError,
    );
    expect(() => bus.send(PlaceOrder, { orderId: 'b', amount: 1 }).register(() => {})).toThrow(
      SendOnlyEndpointError,
    );
    expect(() => bus.handle(PlaceOrder, () => {})).toThrow(SendOnlyEndpointError);
  });

  it('after stop(), sending fails with EndpointStateError', async () => {
    const bus = createTestEndpoint();
    expect(bus.state).toBe('started');
    await bus.stop();
    await expect(bus.send(PlaceOrder, { orderId: 'a', amount: 1 })).rejects.toBeInstanceOf(
      EndpointStateError,
    );
    await expect(bus.publish(OrderPlaced, { orderId: 'a' })).rejects.toBeInstanceOf(
      EndpointStateError,
    );
  });

  it('reserved headers are refused as on a real endpoint', async () => {
    const bus = createTestEndpoint();
    await expect(
      bus.send(PlaceOrder, { orderId: 'a', amount: 1 }, { headers: { 'tidings.message-id': 'x' } }),
    ).rejects.toThrow("Header 'tidings.message-id' is reserved");
  });

  it('records the reply each request got, or why it failed', async () => {
    const bus = createTestEndpoint()
      .when(PlaceOrder, { orderId: 'ok' }, replyMessage(OrderAccepted, { orderId: 'ok' }))
      .when(PlaceOrder, { orderId: 'code' }, Status.Rejected);
    await bus.request(PlaceOrder, { orderId: 'ok', amount: 1 }, { expect: OrderAccepted });
    await bus
      .request(PlaceOrder, { orderId: 'code', amount: 1 }, { expect: OrderAccepted })
      .catch(() => {});
    await bus.request(PlaceOrder, { orderId: 'none', amount: 1 }).catch(() => {});
    const [ok, mismatch, unmatched] = bus.requestsOf(PlaceOrder);
    expect(ok).toMatchObject({
      expect: OrderAccepted,
      reply: { kind: 'message', messageType: 'sales.OrderAccepted', body: { orderId: 'ok' } },
      error: undefined,
    });
    expect(mismatch?.reply).toMatchObject({ kind: 'code', code: Status.Rejected });
    expect(mismatch?.error).toBeInstanceOf(ReplyMismatchError);
    expect(unmatched?.reply).toBeUndefined();
    expect(unmatched?.error).toBeInstanceOf(NoCannedReplyError);
  });

  it('clear() forgets the records and keeps the canned replies', async () => {
    const bus = createTestEndpoint().when(PlaceOrder, Status.Ok);
    await bus.request(PlaceOrder, { orderId: 'a', amount: 1 });
    await bus.publish(OrderPlaced, { orderId: 'a' });
    bus.clear();
    expect([bus.sent, bus.published, bus.requests]).toEqual([[], [], []]);
    expect(await bus.request(PlaceOrder, { orderId: 'a', amount: 1 }, { expect: 'code' })).toBe(0);
  });
});
