import { createEndpoint, type Endpoint, type Logger, type Transport } from '@tidings/core';
import { runUntilSignal, tracingFromEnv, transportFromEnv } from '@tidings/sample-support';
import {
  backendName,
  DescribeOrder,
  ErrorCodes,
  OrderDescription,
  ProcessOrder,
} from './messages.js';

export interface BackendOptions {
  readonly logger?: Logger;
  /** Stable, so restarts reuse one instance queue instead of leaving one behind each time. */
  readonly instanceId?: string;
  /** Simulated work per command, in milliseconds (waiting, not blocking the event loop). */
  readonly workMs?: number;
  /** Commands handled at once. */
  readonly concurrency?: number;
}

/**
 * The backend: answers `ProcessOrder` with a return code (`Fail` for even ids) and
 * `DescribeOrder` with a message. Replies go to whichever instance sent the command.
 */
export function createBackendEndpoint(
  transport: Transport,
  options: BackendOptions = {},
): Endpoint {
  const backend = createEndpoint({
    name: backendName,
    instanceId: options.instanceId ?? 'backend-1',
    transport,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.concurrency ? { concurrency: options.concurrency } : {}),
    ...tracingFromEnv('backend'),
  });
  const work = () =>
    options.workMs ? new Promise((resolve) => setTimeout(resolve, options.workMs)) : undefined;
  backend.handle(ProcessOrder, async (order, ctx) => {
    await work();
    await ctx.reply(order.id % 2 === 0 ? ErrorCodes.Fail : ErrorCodes.None);
  });
  backend.handle(DescribeOrder, async (order, ctx) => {
    await work();
    const text = `Order ${order.id}: ${order.id % 2 === 0 ? 'on hold' : 'shipped'}`;
    await ctx.reply(OrderDescription, { id: order.id, text });
  });
  return backend;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const backend = createBackendEndpoint(await transportFromEnv('tidings-web-callback'), {
    workMs: Number(process.env.BACKEND_WORK_MS ?? 0),
    instanceId: process.env.BACKEND_INSTANCE_ID ?? 'backend-1',
  });
  await backend.start();
  console.log('[backend] running');
  // Tell a launcher the queue exists, so the web server does not send into nothing.
  process.send?.('ready');
  await runUntilSignal(() => backend.stop());
}
