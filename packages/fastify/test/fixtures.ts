import {
  createEndpoint,
  createInMemoryTransport,
  defineMessage,
  type Endpoint,
  type EndpointOptions,
  type InMemoryTransport,
  silentLogger,
} from '@tidings/core';
import type { IncomingTransportMessage } from '@tidings/core/transport';
import { z } from 'zod';

export enum Outcome {
  Ok = 0,
  Failed = 1,
}

/** Replies `Quoted` with twice the amount; `silent` gets no reply; `slowMs` delays the reply. */
export const Quote = defineMessage<{
  sku: string;
  amount: number;
  silent?: boolean;
  slowMs?: number;
}>('test.Quote');
export const Quoted = defineMessage<{ sku: string; price: number }>('test.Quoted');
/** Replies a return code: `Outcome.Failed` for even ids. */
export const Check = defineMessage(
  'test.Check',
  z.object({ id: z.coerce.number().int().positive() }),
);
/** Nobody routes it. */
export const Unrouted = defineMessage<{ id: number }>('test.Unrouted');

export interface Bus {
  readonly transport: InMemoryTransport;
  readonly backend: Endpoint;
  /** A started backend and a web endpoint (not started: the plugin starts it). */
  web(options?: Partial<EndpointOptions>): Endpoint;
  stop(): Promise<void>;
}

/** Records every message that reaches `queue` (the error queue, say), through the transport SPI. */
export async function readQueue(transport: InMemoryTransport, queue: string) {
  const messages: IncomingTransportMessage[] = [];
  const connection = await transport.openEndpoint(
    { endpointName: queue, inputQueue: queue, errorQueue: `${queue}.unused`, subscriptions: [] },
    { logger: silentLogger },
  );
  await connection.startReceiving({
    concurrency: 1,
    onMessage: async (message) => {
      messages.push(message);
      return 'complete';
    },
  });
  return { messages, close: () => connection.close() };
}

export async function startBus(): Promise<Bus> {
  const transport = createInMemoryTransport();
  const backend = createEndpoint({ name: 'Backend', transport, logger: silentLogger });
  backend.handle(Quote, async (quote, ctx) => {
    if (quote.silent) return;
    if (quote.slowMs) await new Promise((resolve) => setTimeout(resolve, quote.slowMs));
    await ctx.reply(Quoted, { sku: quote.sku, price: quote.amount * 2 });
  });
  backend.handle(Check, async (check, ctx) => {
    await ctx.reply(check.id % 2 === 0 ? Outcome.Failed : Outcome.Ok);
  });
  await backend.start();
  const webs: Endpoint[] = [];
  return {
    transport,
    backend,
    web(options = {}) {
      const web = createEndpoint({
        name: 'Web',
        transport,
        logger: silentLogger,
        routes: { [Quote.name]: 'Backend', [Check.name]: 'Backend' },
        ...options,
      });
      webs.push(web);
      return web;
    },
    async stop() {
      for (const web of webs) await web.stop();
      await backend.stop();
    },
  };
}

/** Polls until `condition` holds (or fails the test after `timeoutMs`). */
export async function eventually(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
