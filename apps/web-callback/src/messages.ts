import { defineMessage } from '@tidings/core';

/** The return codes the backend answers `ProcessOrder` with. */
export enum ErrorCodes {
  None = 0,
  Fail = 1,
}

/** A command answered with a return code (`ErrorCodes`): no body travels back, only the number. */
export const ProcessOrder = defineMessage<{ id: number }>('callbacks.ProcessOrder');

/** A command answered with a message (`OrderDescription`). */
export const DescribeOrder = defineMessage<{ id: number }>('callbacks.DescribeOrder');

export const OrderDescription = defineMessage<{ id: number; text: string }>(
  'callbacks.OrderDescription',
);

export const backendName = 'Callbacks.Backend';
export const webName = 'Callbacks.Web';

/** Where the web endpoint sends each command. */
export const routes = { [ProcessOrder.name]: backendName, [DescribeOrder.name]: backendName };
