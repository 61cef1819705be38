import { defineMessage } from '@tidings/core';

/** A command to the order service. */
export const PlaceOrder = defineMessage<{ orderId: string; customer: string; amount: number }>(
  'orders.PlaceOrder',
);

/** The event the order service publishes once an order is stored. */
export const OrderPlaced = defineMessage<{ orderId: string; amount: number }>('orders.OrderPlaced');
