import * as amqp from 'amqplib';

/** The broker the tests use: RABBITMQ_URL, or the local default. */
export const brokerUrl = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** A plain amqplib connection for test setup and inspection. */
export async function rawConnection(url = brokerUrl): Promise<amqp.ChannelModel> {
  return amqp.connect(url, { noDelay: true });
}

/** Deletes queues and exchanges a test made; a missing one is fine. */
export async function deleteTopology(
  queues: readonly string[],
  exchanges: readonly string[] = [],
): Promise<void> {
  const connection = await rawConnection();
  connection.on('error', () => {});
  try {
    let channel = await connection.createChannel();
    channel.on('error', () => {});
    const each = async (
      names: readonly string[],
      run: (c: amqp.Channel, n: string) => Promise<unknown>,
    ) => {
      for (const name of names) {
        try {
          await run(channel, name);
        } catch {
          channel = await connection.createChannel();
          channel.on('error', () => {});
        }
      }
    };
    await each(queues, (c, name) => c.deleteQueue(name));
    await each(exchanges, (c, name) => c.deleteExchange(name));
  } finally {
    await connection.close().catch(() => {});
  }
}

/** Messages ready in a queue, or undefined when it does not exist. */
export async function queueDepth(queue: string): Promise<number | undefined> {
  const connection = await rawConnection();
  connection.on('error', () => {});
  try {
    const channel = await connection.createChannel();
    channel.on('error', () => {});
    const ok = await channel.checkQueue(queue);
    return ok.messageCount;
  } catch {
    return undefined;
  } finally {
    await connection.close().catch(() => {});
  }
}
