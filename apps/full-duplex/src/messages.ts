import { defineMessage } from '@tidings/core';

/** A command the client sends to Sales. */
export const PlaceOrder = defineMessage<{ orderId: string; amount: number }>('sales.PlaceOrder');

/** Sales' reply. */
export const OrderAccepted = defineMessage<{ orderId: string; total: number }>(
  'sales.OrderAccepted',
);

/** Where each message goes. */
export const routes = { [PlaceOrder.name]: 'Sales' };
