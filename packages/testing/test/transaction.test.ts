import { defineMessage, storageSession } from '@tidings/core';
import { describe, expect, it } from 'vitest';
import { createTestContext, createTestEndpoint } from '../src/index.ts';

const ShipOrder = defineMessage<{ orderId: string }>('sales.ShipOrder');
const OrderPlaced = defineMessage<{ orderId: string }>('sales.OrderPlaced');

describe('storage sessions in tests', () => {
  it('transaction records what a committed scope sent and drops what a failed one sent', async () => {
    const session = { queries: [] as string[] };
    const endpoint = createTestEndpoint({ session });
    const result = await endpoint.transaction(async (scope) => {
      storageSession<typeof session>(scope).queries.push('insert');
      await scope.send(ShipOrder, { orderId: 'a' }, { to: 'Shipping' });
      await scope.publish(OrderPlaced, { orderId: 'a' });
      return 7;
    });
    expect(result).toBe(7);
    expect(session.queries).toEqual(['insert']);
    expect(endpoint.sentOf(ShipOrder).map((s) => s.payload)).toEqual([{ orderId: 'a' }]);
    await expect(
      endpoint.transaction(async (scope) => {
        await scope.send(ShipOrder, { orderId: 'b' }, { to: 'Shipping' });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(endpoint.sent).toHaveLength(1);
    expect(endpoint.published).toHaveLength(1);
  });

  it('a test context hands the handler the session it was given', () => {
    const session = { id: 's' };
    expect(storageSession(createTestContext({ session }))).toBe(session);
    expect(() => storageSession(createTestContext())).toThrow(/no storage session/);
  });
});
