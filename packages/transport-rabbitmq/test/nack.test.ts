import {
  createEndpoint,
  defineMessage,
  type Endpoint,
  silentLogger,
  TransportError,
} from '@tidings/core';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import { brokerUrl, deleteTopology, queueDepth, rawConnection } from './broker.ts';
import { disposeEndpoints, pool, sleep, uniquePrefix } from './helpers.ts';

const Work = defineMessage<{ n: number }>('rmqnack.Work');

// A full queue with `reject-publish` nacks every publish: the broker's answer while, in a
// cluster, a quorum queue has no leader.
describe('rabbitmq nacked sends', () => {
  const endpoints: Endpoint[] = [];
  const queues: string[] = [];
  afterEach(() => disposeEndpoints(endpoints.splice(0), queues.splice(0)));
  afterAll(() => deleteTopology([], [Work.name]));

  const fullQueue = async (queue: string) => {
    queues.push(queue);
    const connection = await rawConnection();
    const channel = await connection.createChannel();
    await channel.assertQueue(queue, {
      durable: true,
      arguments: { 'x-queue-type': 'classic', 'x-max-length': 1, 'x-overflow': 'reject-publish' },
    });
    channel.sendToQueue(queue, Buffer.from('filler'));
    await channel.checkQueue(queue);
    return { channel, close: () => connection.close().catch(() => {}) };
  };

  const sender = async (prefix: string, queue: string, unavailableTimeoutMs: number) => {
    queues.push(`${prefix}-error`);
    const endpoint = createEndpoint({
      name: `${prefix}-Client`,
      transport: createRabbitMqTransport({ url: brokerUrl, unavailableTimeoutMs }),
      logger: silentLogger,
      sendOnly: true,
      routes: { [Work.name]: queue },
      recoverability: { errorQueue: `${prefix}-error` },
    });
    endpoints.push(endpoint);
    await endpoint.start();
    return endpoint;
  };

  it('a nacked send is sent again until the broker takes it', async () => {
    const prefix = uniquePrefix('nack');
    const queue = `${prefix}-Full`;
    const raw = await fullQueue(queue);
    const client = await sender(prefix, queue, 20_000);
    let settled = false;
    const sending = client.send(Work, { n: 1 }).finally(() => {
      settled = true;
    });
    await sleep(500);
    expect(settled).toBe(false);
    await raw.channel.purgeQueue(queue);
    await raw.close();
    await sending;
    expect(await queueDepth(queue)).toBe(1);
  });

  it('a channel that keeps nacking is replaced without failing the sends on it', async () => {
    const prefix = uniquePrefix('nack-channel');
    const full = `${prefix}-Full`;
    const open = `${prefix}-Open`;
    const raw = await fullQueue(full);
    queues.push(open);
    await raw.channel.assertQueue(open, { durable: true });
    const client = await sender(prefix, full, 20_000);
    const nacked = Array.from({ length: 10 }, (_, n) => client.send(Work, { n }));
    // Sends to a queue that takes them go on, on whichever channel is current.
    await pool(400, 20, async (n) => {
      await client.send(Work, { n }, { to: open });
      await sleep(5);
    });
    await raw.channel.purgeQueue(full);
    await raw.channel.deleteQueue(full);
    await raw.channel.assertQueue(full, { durable: true });
    await raw.close();
    await Promise.all(nacked);
    expect(await queueDepth(open)).toBeGreaterThanOrEqual(400);
    expect(await queueDepth(full)).toBeGreaterThanOrEqual(10);
  });

  it('a send nacked until unavailableTimeoutMs rejects with a retryable TransportError', async () => {
    const prefix = uniquePrefix('nack-timeout');
    const queue = `${prefix}-Full`;
    const raw = await fullQueue(queue);
    const client = await sender(prefix, queue, 1_500);
    const error = await client.send(Work, { n: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await raw.close();
    expect(error).toBeInstanceOf(TransportError);
    expect((error as TransportError).isRetryable).toBe(true);
  });
});
