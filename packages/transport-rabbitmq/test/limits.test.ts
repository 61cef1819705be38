import {
  ConfigurationError,
  createEndpoint,
  defineMessage,
  type Endpoint,
  silentLogger,
  UsageError,
} from '@tidings/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createRabbitMqTransport, MAX_DELAY_SECONDS } from '../src/index.ts';
import { brokerUrl } from './broker.ts';
import { disposeEndpoints, uniquePrefix } from './helpers.ts';

const Job = defineMessage<{ n: number }>('limits.Job');
const wait = { timeout: 20_000, interval: 20 };

describe('rabbitmq: AMQP short-string limits are refused at the call', () => {
  const endpoints: Endpoint[] = [];
  const errorQueues: string[] = [];
  afterEach(async () => {
    await disposeEndpoints(endpoints.splice(0), errorQueues.splice(0));
  });

  const pair = async (prefix: string) => {
    const transport = createRabbitMqTransport({ url: brokerUrl });
    const got: Array<{ id: string; headers: Record<string, string> }> = [];
    const errorQueue = `${prefix}-error`;
    const server = createEndpoint({
      name: `${prefix}-server`,
      transport,
      logger: silentLogger,
      recoverability: { errorQueue },
    });
    server.handle(
      Job,
      (_job, ctx) => void got.push({ id: ctx.messageId, headers: { ...ctx.headers } }),
    );
    const client = createEndpoint({
      name: `${prefix}-client`,
      transport,
      logger: silentLogger,
      recoverability: { errorQueue },
    });
    endpoints.push(server, client);
    await server.start();
    await client.start();
    errorQueues.push(errorQueue);
    return { client, to: server.name, got };
  };

  it.each(['unavailableTimeoutMs', 'reconnectInitialDelayMs', 'reconnectMaxDelayMs'])(
    'refuses %s of 2^31 ms or more, which Node.js would fire at once',
    (name) => {
      const create = () => createRabbitMqTransport({ url: brokerUrl, [name]: 2 ** 31 });
      expect(create).toThrow(ConfigurationError);
      expect(create).toThrow(`${name} must be at most`);
    },
  );

  it('declares the limits', () => {
    expect(createRabbitMqTransport({ url: brokerUrl }).capabilities).toMatchObject({
      maxMessageIdBytes: 255,
      maxHeaderNameBytes: 255,
      maxDelayMs: MAX_DELAY_SECONDS * 1000,
    });
  });

  it('a message id over 255 bytes is a UsageError, not a retryable TransportError; 255 bytes arrive', async () => {
    const { client, to, got } = await pair(uniquePrefix('limits-id'));
    const atLimit = 'i'.repeat(255);
    const refused = client.send(Job, { n: 1 }, { to, messageId: `${atLimit}i` });
    await expect(refused).rejects.toBeInstanceOf(UsageError);
    await expect(refused).rejects.toMatchObject({ isRetryable: false });
    // Two-byte characters: 128 of them are 256 bytes.
    await expect(client.send(Job, { n: 1 }, { to, messageId: 'é'.repeat(128) })).rejects.toThrow(
      UsageError,
    );
    await client.send(Job, { n: 2 }, { to, messageId: atLimit });
    await expect.poll(() => got.map((g) => g.id), wait).toEqual([atLimit]);
  });

  it('a header name over 255 bytes is a UsageError; 255 bytes arrive', async () => {
    const { client, to, got } = await pair(uniquePrefix('limits-header'));
    const atLimit = 'x-'.padEnd(255, 'h');
    const refused = client.send(Job, { n: 1 }, { to, headers: { [`${atLimit}h`]: 'v' } });
    await expect(refused).rejects.toBeInstanceOf(UsageError);
    await client.send(Job, { n: 2 }, { to, headers: { [atLimit]: 'v' } });
    await expect.poll(() => got.length, wait).toBe(1);
    expect(got[0]?.headers[atLimit]).toBe('v');
  });
});
