import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  createEndpoint,
  defineMessage,
  Headers,
  InvalidDestinationError,
  returnToSourceQueue,
} from '../src/index.ts';
import { putRaw, readQueue, recordingLogger, world } from './helpers.ts';

const Job = defineMessage<{ n: number }>('dest.Job');
const Done = defineMessage<{ n: number }>('dest.Done');

/** Names a transport must never be given: they escape a folder or hit a reserved one. */
const bad = ['..', '.', '.delayed', '../outside', 'a/b', 'a\\b', '', ' x', 'x'.repeat(101)];

describe('destinations are validated once, in core, for every transport', () => {
  let w = world();
  afterEach(async () => {
    await w.stopAll();
    w = world();
  });

  it.each(bad)('send, request and a handler send refuse to: %j', async (to) => {
    const server = w.endpoint({ name: 'DestServer' });
    const seen: unknown[] = [];
    server.handle(Job, async (_job, ctx) => {
      seen.push(await ctx.send(Done, { n: 1 }, { to }).catch((error: unknown) => error));
    });
    const client = w.endpoint({ name: 'DestClient' });
    await server.start();
    await client.start();
    const sent = client.send(Job, { n: 1 }, { to });
    await expect(sent).rejects.toBeInstanceOf(InvalidDestinationError);
    await expect(sent).rejects.toMatchObject({
      code: 'TIDINGS_INVALID_DESTINATION',
      isRetryable: false,
    });
    await expect(client.request(Job, { n: 1 }, { to })).rejects.toBeInstanceOf(
      InvalidDestinationError,
    );
    await client.send(Job, { n: 1 }, { to: 'DestServer' });
    await expect.poll(() => seen.length).toBe(1);
    expect(seen[0]).toBeInstanceOf(InvalidDestinationError);
  });

  it('accepts endpoint names and instance queues', async () => {
    const long = `${'a'.repeat(100)}.${'b'.repeat(100)}`;
    const server = w.endpoint({ name: 'a'.repeat(100), instanceId: 'b'.repeat(100) });
    const got: number[] = [];
    server.handle(Job, (job) => void got.push(job.n));
    const client = w.endpoint({ name: 'DestClient2' });
    await server.start();
    await client.start();
    await client.send(Job, { n: 1 }, { to: long });
    await client.send(Job, { n: 2 }, { to: 'a'.repeat(100) });
    await expect.poll(() => got.sort()).toEqual([1, 2]);
  });

  it("a received message's reply-to that is not a destination: the message goes to the error queue at once", async () => {
    const server = w.endpoint({ name: 'DestReplier' });
    server.handle(Job, async (job, ctx) => {
      await ctx.reply(Done, job);
    });
    await server.start();
    const errors = await readQueue(w.transport, 'error');
    await putRaw(w.transport, 'DestReplier', 'hostile-1', {
      [Headers.MessageId]: 'hostile-1',
      [Headers.MessageType]: Job.name,
      [Headers.Intent]: 'send',
      [Headers.ReplyTo]: '..',
    });
    await expect.poll(() => errors.messages.length).toBe(1);
    const failed = errors.messages[0]?.headers ?? {};
    expect(failed[Headers.ExceptionCode]).toBe('TIDINGS_INVALID_DESTINATION');
    expect(failed[Headers.ExceptionMessage]).toMatch(/tidings\.reply-to/);
    expect(server.stats.immediateRetries).toBe(0);
    expect(server.stats.delayedRetries).toBe(0);
    await errors.close();
  });

  it('refuses an error queue option that is not a queue name', () => {
    expect(() =>
      createEndpoint({
        name: 'DestBadErrorQueue',
        transport: w.transport,
        recoverability: { errorQueue: '../errors' },
      }),
    ).toThrow(ConfigurationError);
  });

  it('returnToSourceQueue keeps a message whose failed queue is not a destination', async () => {
    const logger = recordingLogger();
    await putRaw(w.transport, 'dest-error', 'failed-1', {
      [Headers.MessageId]: 'failed-1',
      [Headers.MessageType]: Job.name,
      [Headers.FailedQueue]: '..',
    });
    const result = await returnToSourceQueue({
      transport: w.transport,
      errorQueue: 'dest-error',
      idleMs: 50,
      logger,
    });
    expect(result).toEqual({ returned: 0, kept: 1 });
    expect(logger.lines.some((line) => /not a valid queue name/.test(line.message))).toBe(true);
  });
});
