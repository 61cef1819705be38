import {
  ConfigurationError,
  createEndpoint,
  defineMessage,
  type Endpoint,
  type EndpointOptions,
  silentLogger,
} from '@tidings/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import { brokerUrl, deleteTopology } from './broker.ts';
import { disposeEndpoints, uniquePrefix } from './helpers.ts';

const Ask = defineMessage<{ n: number }>('rmqinstance.Ask');
const Answer = defineMessage<{ n: number }>('rmqinstance.Answer');

describe('rabbitmq: two live processes with one instance id', { timeout: 60_000 }, () => {
  const endpoints: Endpoint[] = [];
  afterAll(async () => {
    await disposeEndpoints(endpoints);
    await deleteTopology([], [Ask.name, Answer.name]);
  });

  const endpoint = (options: Omit<EndpointOptions, 'transport'>) => {
    const made = createEndpoint({
      transport: createRabbitMqTransport({ url: brokerUrl, unavailableTimeoutMs: 20_000 }),
      logger: silentLogger,
      ...options,
    });
    endpoints.push(made);
    return made;
  };

  it('the second refuses to start with a ConfigurationError; the first keeps every reply', async () => {
    const prefix = uniquePrefix('instance');
    const server = endpoint({ name: `${prefix}-Server` });
    server.handle(Ask, async (ask, ctx) => ctx.reply(Answer, { n: ask.n }));
    await server.start();
    const client = {
      name: `${prefix}-Web`,
      instanceId: 'web-1',
      routes: { [Ask.name]: server.name },
    };
    const first = endpoint(client);
    await first.start();

    const second = endpoint(client);
    const refused = await second.start().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(ConfigurationError);
    expect(String(refused)).toMatch(/instance id/);

    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, n) => first.request(Ask, { n }, { expect: Answer })),
    );
    expect(answers.map((answer) => answer.n)).toEqual(Array.from({ length: 40 }, (_, n) => n));

    // Once the first is gone, the id is free again: a restart with it works.
    await first.stop();
    const restarted = endpoint(client);
    await restarted.start();
    expect(await restarted.request(Ask, { n: 41 }, { expect: Answer })).toEqual({ n: 41 });
  });
});
