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
import { disposeEndpoints, sleep, uniquePrefix } from './helpers.ts';

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
