import type { StandardSchemaV1 } from '@standard-schema/spec';
import { defineMessage, type HandlerContext, storageSession, ValidationError } from '@tidings/core';
import { describe, expect, it } from 'vitest';
import { createTestContext, createTestEndpoint, replyMessage } from '../src/index.ts';

const CheckCredit = defineMessage<{ customer: string }>('t.CheckCredit');
const creditChecked: StandardSchemaV1<unknown, { ok: boolean }> = {
  '~standard': {
    version: 1,
    vendor: 'test',
    validate: (value: unknown) =>
      typeof (value as { ok?: unknown })?.ok === 'boolean'
        ? { value: value as { ok: boolean } }
        : { issues: [{ message: 'ok must be a boolean' }] },
  },
};
const CreditChecked = defineMessage('t.CreditChecked', creditChecked);
const ShipOrder = defineMessage<{ orderId: string }>('t.ShipOrder');

interface OrderState {
  readonly orderId: string;
}

/** Code under test: a continuation that writes through the session and sends. */
function salesEndpoint() {
  const rows: string[] = [];
  const session = { insert: (row: string) => rows.push(row) };
  const endpoint = createTestEndpoint({ session, routes: { [CheckCredit.name]: 'Billing' } });
  const db = (ctx: HandlerContext) => storageSession<typeof session>(ctx);
  const afterCredit = endpoint.continuation('after-credit-check', {
    reply: CreditChecked,
    onReply: async (reply, state: OrderState, ctx) => {
      db(ctx).insert(`${state.orderId}:${reply.ok}`);
      if (reply.ok) await ctx.send(ShipOrder, { orderId: state.orderId }, { to: 'Shipping' });
    },
    onTimeout: async (state: OrderState, ctx) => {
      db(ctx).insert(`${state.orderId}:timeout`);
    },
  });
  return { endpoint, afterCredit, rows };
}

describe('continuations in @tidings/testing', () => {
  it('drives a continuation with a canned reply: its writes and sends are there to assert', async () => {
    const { endpoint, afterCredit, rows } = salesEndpoint();
    const ctx = await endpoint.replyTo(afterCredit, { ok: true }, { orderId: 'o-1' });
    expect(rows).toEqual(['o-1:true']);
    expect(ctx.sentOf(ShipOrder).map((s) => s.payload)).toEqual([{ orderId: 'o-1' }]);
    await expect(
      endpoint.replyTo(afterCredit, { ok: 'yes' } as never, { orderId: 'o-2' }),
    ).rejects.toBeInstanceOf(ValidationError);
  });

  it('drives a continuation with a timeout', async () => {
    const { endpoint, afterCredit, rows } = salesEndpoint();
    const ctx = await endpoint.timeOut(afterCredit, { orderId: 'o-3' });
    expect(rows).toEqual(['o-3:timeout']);
    expect(ctx.sent).toEqual([]);
  });

  it('answers a durable request with a canned reply and runs the continuation before resolving', async () => {
    const { endpoint, afterCredit, rows } = salesEndpoint();
    endpoint.when(CheckCredit, replyMessage(CreditChecked, { ok: false }));
    const reply = await endpoint.request(
      CheckCredit,
      { customer: 'c' },
      {
        continueWith: afterCredit,
        state: { orderId: 'o-4' },
      },
    );
    expect(reply).toEqual({ ok: false });
    expect(rows).toEqual(['o-4:false']);
    expect(endpoint.requestsOf(CheckCredit)).toHaveLength(1);
  });

  it('records a durable request sent in a handler or a transaction', async () => {
    const { endpoint, afterCredit } = salesEndpoint();
    const ctx = createTestContext();
    const correlationId = await afterCredit.send(
      ctx,
      CheckCredit,
      { customer: 'c' },
      {
        state: { orderId: 'o-5' },
        to: 'Billing',
      },
    );
    expect(ctx.sentOf(CheckCredit)[0]?.messageId).toBe(correlationId);
    await endpoint.transaction(async (scope) => {
      await afterCredit.send(scope, CheckCredit, { customer: 'd' }, { state: { orderId: 'o-6' } });
    });
    expect(endpoint.sentOf(CheckCredit).map((s) => s.destination)).toEqual(['Billing']);
  });
});
