import type { Channel, ConsumeMessage } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { ConsumerChannel, LAZY_ACK_MS } from '../src/consumer-channel.ts';
import { sleep } from './helpers.ts';

/** An amqplib channel that records the acks it is asked to send. */
function recordingChannel() {
  const acks: string[] = [];
  const channel = {
    ack(message: ConsumeMessage, allUpTo?: boolean) {
      acks.push(`${allUpTo ? 'up to ' : ''}${message.fields.deliveryTag}`);
    },
    nack(message: ConsumeMessage) {
      acks.push(`nack ${message.fields.deliveryTag}`);
    },
  } as unknown as Channel;
  return { channel, acks };
}

const delivery = (deliveryTag: number) => ({ fields: { deliveryTag } }) as ConsumeMessage;
const nextPass = () => new Promise((resolve) => setImmediate(resolve));

describe('ConsumerChannel', () => {
  it('acks completed deliveries once per pass, with one multiple ack for the run', async () => {
    const { channel, acks } = recordingChannel();
    const consumer = new ConsumerChannel(channel, setImmediate);
    const messages = [1, 2, 3].map(delivery);
    for (const message of messages) consumer.delivered(message);
    for (const message of messages) consumer.complete(message);
    expect(acks).toEqual([]);
    await nextPass();
    expect(acks).toEqual(['up to 3']);
  });

  it('acks lazily completed deliveries once enough wait, or after LAZY_ACK_MS', async () => {
    const { channel, acks } = recordingChannel();
    const consumer = new ConsumerChannel(channel, setImmediate, 3);
    const messages = [1, 2, 3, 4].map(delivery);
    for (const message of messages) consumer.delivered(message);
    consumer.complete(messages[0] as ConsumeMessage, true);
    consumer.complete(messages[1] as ConsumeMessage, true);
    await nextPass();
    expect(acks).toEqual([]);
    consumer.complete(messages[2] as ConsumeMessage, true);
    await nextPass();
    expect(acks).toEqual(['up to 3']);
    consumer.complete(messages[3] as ConsumeMessage, true);
    await nextPass();
    expect(acks).toEqual(['up to 3']);
    await sleep(LAZY_ACK_MS + 30);
    expect(acks).toEqual(['up to 3', 'up to 4']);
  });

  it('a delivery completed at once takes the lazily completed ones before it along', async () => {
    const { channel, acks } = recordingChannel();
    const consumer = new ConsumerChannel(channel, setImmediate, 100);
    const messages = [1, 2, 3].map(delivery);
    for (const message of messages) consumer.delivered(message);
    consumer.complete(messages[0] as ConsumeMessage, true);
    consumer.complete(messages[1] as ConsumeMessage, true);
    consumer.complete(messages[2] as ConsumeMessage);
    await nextPass();
    expect(acks).toEqual(['up to 3']);
    // Nothing is left for the timer.
    await sleep(LAZY_ACK_MS + 30);
    expect(acks).toEqual(['up to 3']);
  });

  it('flush, as before a close, acks what waits lazily', () => {
    const { channel, acks } = recordingChannel();
    const consumer = new ConsumerChannel(channel, setImmediate, 100);
    const message = delivery(7);
    consumer.delivered(message);
    consumer.complete(message, true);
    consumer.flush();
    expect(acks).toEqual(['up to 7']);
  });
});
