import { randomUUID } from 'node:crypto';
import type * as amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publish } from '../src/sender.ts';
import { rawConnection } from './broker.ts';

/**
 * The sender publishes through amqplib's internals to skip the cost of its `publish`: what reaches
 * the broker must be what `publish` would have sent, property for property.
 */
describe('publish', () => {
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;
  let confirms: amqp.ConfirmChannel;
  let queue: string;

  beforeAll(async () => {
    connection = await rawConnection();
    channel = await connection.createChannel();
    confirms = await connection.createConfirmChannel();
    ({ queue } = await channel.assertQueue('', { exclusive: true }));
  });
  afterAll(async () => {
    await connection.close();
  });

  async function take(): Promise<amqp.GetMessage> {
    for (let i = 0; i < 100; i++) {
      const message = await channel.get(queue, { noAck: true });
      if (message !== false) return message;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`nothing arrived in '${queue}'`);
  }

  const cases: Array<[string, amqp.Options.Publish]> = [
    ['no options', {}],
    [
      'every property Tidings sets, transient',
      {
        persistent: false,
        mandatory: true,
        headers: { 'tidings.headers': '{"intent":"send"}', 'x-user': 'é ü' },
        messageId: randomUUID(),
        correlationId: randomUUID(),
        replyTo: 'some.queue',
        contentType: 'application/json',
        type: 'sales.PlaceOrder',
        appId: 'sales',
      },
    ],
    [
      'a copy: persistent, typed table values, encoding, priority, timestamp',
      {
        persistent: true,
        headers: { count: 3, ratio: 0.5, flag: true, list: ['a', 'b'], nested: { a: 'b' } },
        contentEncoding: 'gzip',
        priority: 3,
        timestamp: 1_700_000_000,
        expiration: 60_000,
        userId: 'guest',
      },
    ],
    ['deliveryMode without persistent', { deliveryMode: 2 }],
  ];

  for (const [what, options] of cases) {
    it(`sends what amqplib's publish sends: ${what}`, async () => {
      const content = Buffer.from(what);
      expect(channel.publish('', queue, content, options)).toBe(true);
      const viaAmqplib = await take();
      expect(publish(channel, '', queue, content, options)).toBe(true);
      const viaTidings = await take();
      expect(viaTidings.properties).toEqual(viaAmqplib.properties);
      expect(viaTidings.content).toEqual(viaAmqplib.content);
      expect(viaTidings.fields.routingKey).toBe(queue);
    });
  }

  it('on a confirm channel, calls back with the broker confirm', async () => {
    const confirmed = await new Promise<unknown>((resolve) => {
      publish(confirms, '', queue, Buffer.from('confirmed'), { persistent: true }, resolve);
    });
    expect(confirmed).toBeNull();
    expect((await take()).content.toString()).toBe('confirmed');
  });

  it('throws on a closed channel, as publish does', async () => {
    const closing = await connection.createChannel();
    await closing.close();
    expect(() => closing.publish('', queue, Buffer.from('x'))).toThrow(/closed/i);
    expect(() => publish(closing, '', queue, Buffer.from('x'), {})).toThrow(/closed/i);
  });

  it('falls back to the public publish on a channel without the internals it uses', () => {
    const calls: unknown[][] = [];
    const other = {
      publish: (...args: unknown[]) => {
        calls.push(args);
        return false;
      },
    } as unknown as amqp.ConfirmChannel;
    const confirmed = () => {};
    expect(publish(other, 'ex', 'key', Buffer.from('x'), { type: 't' }, confirmed)).toBe(false);
    expect(calls).toEqual([['ex', 'key', Buffer.from('x'), { type: 't' }, confirmed]]);
  });
});
