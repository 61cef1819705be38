import { createEndpoint, defineMessage, type Endpoint, silentLogger } from '@tidings/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import { brokerUrl, rawConnection } from './broker.ts';
import { disposeEndpoints, uniquePrefix } from './helpers.ts';

const Work = defineMessage<{ n: number }>('rmqids.Work');
const wait = { timeout: 30_000, interval: 50 };

/** Publishes as `amqp-publish` does: a type header and a body, and no `message-id`. */
async function publishWithoutId(queue: string, body: string): Promise<void> {
  const connection = await rawConnection();
  try {
    const channel = await connection.createConfirmChannel();
    channel.sendToQueue(queue, Buffer.from(body), {
      contentType: 'application/json',
      headers: { 'tidings.message-type': Work.name },
    });
    await channel.waitForConfirms();
  } finally {
    await connection.close();
  }
}

describe('rabbitmq: a message sent without a message-id', { timeout: 60_000 }, () => {
  const endpoints: Endpoint[] = [];
  afterAll(() => disposeEndpoints(endpoints));

  const start = async (name: string, handle: (id: string, n: number) => Promise<void>) => {
    const endpoint = createEndpoint({
      name,
      transport: createRabbitMqTransport({ url: brokerUrl }),
      logger: silentLogger,
      // A stop abandons what is still being handled: the broker delivers it again.
      stopTimeoutMs: 200,
    });
    endpoint.handle(Work, (payload, ctx) => handle(ctx.messageId, payload.n));
    endpoints.push(endpoint);
    await endpoint.start();
    return endpoint;
  };

  it('keeps the same id on every delivery and after a restart, and different bodies differ', async () => {
    const name = `${uniquePrefix('ids')}-Server`;
    const seen: Array<{ id: string; n: number }> = [];
    const first = await start(name, async (id, n) => {
      seen.push({ id, n });
      // Never finishes: the message is abandoned at stop and delivered again.
      await new Promise(() => {});
    });
    await publishWithoutId(name, '{"n":1}');
    await expect.poll(() => seen.length, wait).toBe(1);
    await first.stop();

    await start(name, async (id, n) => {
      seen.push({ id, n });
    });
    await publishWithoutId(name, '{"n":2}');
    await expect.poll(() => seen.length, wait).toBe(3);

    const [firstDelivery, ...rest] = seen;
    const again = rest.find((entry) => entry.n === 1);
    const other = rest.find((entry) => entry.n === 2);
    expect(firstDelivery?.id).toMatch(/^amqp-sha256:[0-9a-f]{40}$/);
    expect(again?.id).toBe(firstDelivery?.id);
    expect(other?.id).toMatch(/^amqp-sha256:/);
    expect(other?.id).not.toBe(firstDelivery?.id);
  });
});
