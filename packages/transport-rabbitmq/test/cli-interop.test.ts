import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createEndpoint, defineMessage, type Endpoint, silentLogger } from '@tidings/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import { brokerUrl, deleteTopology, queueDepth } from './broker.ts';
import { disposeEndpoints, sleep, uniquePrefix } from './helpers.ts';

// Runs docs/wire-format.md's "Send one from a CLI" commands as written (amqp-tools, which
// scripts/services.sh installs), against a Tidings endpoint: the contract a foreign sender relies on.
const run = promisify(execFile);
const PlaceOrder = defineMessage<{ orderId: string; amount: number }>('sales.PlaceOrder');
const OrderAccepted = defineMessage<{ orderId: string }>('sales.OrderAccepted');

const page = await readFile(
  fileURLToPath(new URL('../../../docs/wire-format.md', import.meta.url)),
  'utf8',
);
const cliBlock = /## Send one from a CLI[\s\S]*?```sh\n([\s\S]*?)```/.exec(page)?.[1] ?? '';

/** The page's commands for another endpoint, reply queue and broker. */
function commands(endpointName: string, replyQueue: string): string {
  return cliBlock
    .replaceAll('amqp://guest:guest@127.0.0.1:5672', brokerUrl)
    .replaceAll('-r Sales', `-r ${endpointName}`)
    .replaceAll('cli.replies', replyQueue)
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, ''))
    .join('\n');
}

const endpoints: Endpoint[] = [];
const queues: string[] = [];
afterAll(async () => {
  await disposeEndpoints(endpoints, queues);
});

async function startSales(prefix: string, seen: Array<{ id: string; orderId: string }>) {
  const errorQueue = `${prefix}-error`;
  queues.push(errorQueue);
  const sales = createEndpoint({
    name: `${prefix}-Sales`,
    transport: createRabbitMqTransport({ url: brokerUrl }),
    logger: silentLogger,
    recoverability: { errorQueue, immediateRetries: 0, delayedRetries: { count: 0 } },
  });
  sales.handle(PlaceOrder, async (order, ctx) => {
    seen.push({ id: ctx.messageId, orderId: order.orderId });
    await ctx.reply(OrderAccepted, { orderId: order.orderId });
  });
  endpoints.push(sales);
  await sales.start();
  return { sales, errorQueue };
}

describe('docs/wire-format.md: a message from amqp-tools', () => {
  it('is handled, and the reply reaches the queue named by -t', async () => {
    expect(cliBlock).toContain('amqp-publish');
    const prefix = uniquePrefix('cli');
    const replyQueue = `${prefix}-replies`;
    queues.push(replyQueue);
    const seen: Array<{ id: string; orderId: string }> = [];
    await startSales(prefix, seen);

    // amqp-get exits non-zero when the queue is still empty (the reply may not be there yet):
    // the page's commands run as written, and a failure of the others shows below.
    const { stdout } = await run('bash', ['-c', commands(`${prefix}-Sales`, replyQueue)]).catch(
      (error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }),
    );
    // The first line is amqp-declare-queue's; amqp-get ran right after the publish, so the reply
    // may not have been there yet.
    let body = stdout.trim().split('\n').slice(1).join('\n');
    for (let i = 0; body === '' && i < 100; i++) {
      await sleep(50);
      body = (
        await run('amqp-get', ['--url', brokerUrl, '-q', replyQueue]).catch(() => ({ stdout: '' }))
      ).stdout.trim();
    }
    expect(seen).toEqual([{ id: 'cli-1', orderId: 'cli-1' }]);
    expect(JSON.parse(body)).toEqual({ orderId: 'cli-1' });
  });

  it('without -t, a handler that replies sends the message to the error queue at once', async () => {
    const prefix = uniquePrefix('cli-noreply');
    const seen: Array<{ id: string; orderId: string }> = [];
    const { errorQueue } = await startSales(prefix, seen);
    const publish = (
      /amqp-publish[\s\S]*?-b '[^']*'/.exec(commands(`${prefix}-Sales`, 'x'))?.[0] ?? ''
    ).replace(/ -t \S+/, '');
    expect(publish).toContain('amqp-publish');
    expect(publish).not.toContain(' -t ');
    await run('bash', ['-euo', 'pipefail', '-c', publish]);
    for (let i = 0; (await queueDepth(errorQueue)) !== 1 && i < 200; i++) await sleep(50);
    expect(await queueDepth(errorQueue)).toBe(1);
    expect(seen).toHaveLength(1);
  });
});

afterAll(async () => {
  await deleteTopology(queues);
});
