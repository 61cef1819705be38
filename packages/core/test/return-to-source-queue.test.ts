import { describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  createInMemoryTransport,
  Headers,
  returnToSourceQueue,
  type Transport,
  TransportUnavailableError,
} from '../src/index.ts';
import { putRaw, readQueue, recordingLogger } from './helpers.ts';

const body = new TextEncoder().encode('{"n":1}');

/** Puts hand-made messages into a queue, as a failed endpoint would have. */
async function put(transport: Transport, queue: string, messages: Array<Record<string, string>>) {
  for (const headers of messages) {
    await putRaw(transport, queue, headers[Headers.MessageId] as string, headers, body);
  }
}

const failedIn = (queue: string | undefined, id: string): Record<string, string> => ({
  [Headers.MessageId]: id,
  [Headers.MessageType]: 't.Job',
  [Headers.DelayedRetries]: '3',
  [Headers.ExceptionType]: 'Error',
  [Headers.ExceptionMessage]: 'boom',
  [Headers.TimeOfFailure]: new Date().toISOString(),
  ...(queue === undefined ? {} : { [Headers.FailedQueue]: queue }),
  'x-tenant': 'acme',
});

describe('returnToSourceQueue', () => {
  it('returns what it can and keeps the rest: no failed-queue header, a queue that is gone', async () => {
    const transport = createInMemoryTransport();
    const billing = await readQueue(transport, 'billing');
    await put(transport, 'error', [
      failedIn('billing', 'a'),
      failedIn(undefined, 'b'),
      failedIn('gone', 'c'),
      failedIn('billing', 'd'),
    ]);
    const logger = recordingLogger();
    const result = await returnToSourceQueue({ transport, logger, idleMs: 2_000 });
    expect(result).toEqual({ returned: 2, kept: 2 });
    await expect.poll(() => billing.messages.map((m) => m.messageId)).toEqual(['a', 'd']);
    // Back as it was sent: failure headers and the delayed-retry count gone, the return counted.
    expect(billing.messages[0]?.headers).toEqual({
      [Headers.MessageId]: 'a',
      [Headers.MessageType]: 't.Job',
      [Headers.Returns]: '1',
      'x-tenant': 'acme',
    });
    expect(Buffer.from(billing.messages[0]?.body ?? []).toString()).toBe('{"n":1}');
    expect(logger.lines.some((l) => l.level === 'warn' && l.message.includes("'gone'"))).toBe(true);
    const errors = await readQueue(transport, 'error');
    await expect.poll(() => errors.messages.map((m) => m.messageId).sort()).toEqual(['b', 'c']);
    // Kept as they were, failure headers included.
    expect(errors.messages.find((m) => m.messageId === 'c')?.headers[Headers.FailedQueue]).toBe(
      'gone',
    );
    await Promise.all([billing.close(), errors.close()]);
  });

  it('returns every copy of a message that failed in several queues (an event): one id, two copies', async () => {
    const transport = createInMemoryTransport();
    const billing = await readQueue(transport, 'billing');
    const shipping = await readQueue(transport, 'shipping');
    await put(transport, 'error', [
      failedIn('billing', 'event'),
      failedIn('shipping', 'event'),
      failedIn('billing', 'after'),
      failedIn(undefined, 'kept'),
      failedIn('shipping', 'last'),
    ]);
    expect(await returnToSourceQueue({ transport, idleMs: 2_000 })).toEqual({
      returned: 4,
      kept: 1,
    });
    await expect.poll(() => billing.messages.map((m) => m.messageId)).toEqual(['event', 'after']);
    await expect.poll(() => shipping.messages.map((m) => m.messageId)).toEqual(['event', 'last']);
    const errors = await readQueue(transport, 'error');
    await expect.poll(() => errors.messages.map((m) => m.messageId)).toEqual(['kept']);
    await Promise.all([billing.close(), shipping.close(), errors.close()]);
  });

  it('counts returns in tidings.returns: a message returned before counts on; junk counts as none', async () => {
    const transport = createInMemoryTransport();
    const billing = await readQueue(transport, 'billing');
    await put(transport, 'error', [
      { ...failedIn('billing', 'again'), [Headers.Returns]: '2' },
      { ...failedIn('billing', 'junk'), [Headers.Returns]: '-1x' },
    ]);
    expect(await returnToSourceQueue({ transport, idleMs: 1_000 })).toEqual({
      returned: 2,
      kept: 0,
    });
    await expect
      .poll(() => billing.messages.map((m) => [m.messageId, m.headers[Headers.Returns]]))
      .toEqual([
        ['again', '3'],
        ['junk', '1'],
      ]);
    await billing.close();
  });

  it('ends after idleMs when the error queue is empty', async () => {
    const transport = createInMemoryTransport();
    const started = Date.now();
    expect(await returnToSourceQueue({ transport, errorQueue: 'failures', idleMs: 200 })).toEqual({
      returned: 0,
      kept: 0,
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
  });

  it('takes a filter over the failure details', async () => {
    const transport = createInMemoryTransport();
    const billing = await readQueue(transport, 'billing');
    await put(transport, 'error', [
      failedIn('billing', 'a'),
      { ...failedIn('billing', 'b'), [Headers.ExceptionType]: 'ValidationError' },
    ]);
    const seen: unknown[] = [];
    const result = await returnToSourceQueue({
      transport,
      idleMs: 2_000,
      filter: (failed) => {
        seen.push({ id: failed.messageId, type: failed.exceptionType, queue: failed.failedQueue });
        return failed.exceptionType !== 'ValidationError';
      },
    });
    expect(result).toEqual({ returned: 1, kept: 1 });
    expect(seen).toEqual([
      { id: 'a', type: 'Error', queue: 'billing' },
      { id: 'b', type: 'ValidationError', queue: 'billing' },
    ]);
    await expect.poll(() => billing.messages.map((m) => m.messageId)).toEqual(['a']);
    await billing.close();
  });

  it('ends the pass at a message it cannot move (here: the filter throws), leaving it in place', async () => {
    const transport = createInMemoryTransport();
    await put(transport, 'error', [failedIn('billing', 'a'), failedIn('billing', 'b')]);
    const logger = recordingLogger();
    const result = await returnToSourceQueue({
      transport,
      logger,
      idleMs: 5_000,
      filter: () => {
        throw new Error('filter bug');
      },
    });
    expect(result).toEqual({ returned: 0, kept: 0 });
    expect(logger.lines.some((l) => l.level === 'warn' && l.message.includes('pass ends'))).toBe(
      true,
    );
    const errors = await readQueue(transport, 'error');
    await expect.poll(() => errors.messages.map((m) => m.messageId).sort()).toEqual(['a', 'b']);
    await errors.close();
  });

  it('refuses bad options before connecting', async () => {
    const transport = createInMemoryTransport();
    await expect(returnToSourceQueue({ transport, idleMs: 0 })).rejects.toThrow(ConfigurationError);
    await expect(returnToSourceQueue({ transport, startTimeoutMs: 1.5 })).rejects.toThrow(
      ConfigurationError,
    );
    await expect(returnToSourceQueue({ transport, errorQueue: '' })).rejects.toThrow(
      ConfigurationError,
    );
    expect(transport.queues()).toEqual([]);
  });

  it('ends with TransportUnavailableError when the error queue is not being read in time', async () => {
    const inMemory = createInMemoryTransport();
    let closed = false;
    // A transport that says when it is reading (as Kafka does once its group has joined), here never.
    const transport: Transport = {
      ...inMemory,
      openEndpoint: async (topology, context) => {
        const connection = await inMemory.openEndpoint(topology, context);
        return {
          ...connection,
          whenReceiving: () => new Promise<void>(() => {}),
          close: async () => {
            closed = true;
            await connection.close();
          },
        };
      },
    };
    const failure = await returnToSourceQueue({ transport, startTimeoutMs: 50 }).catch(
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(TransportUnavailableError);
    expect((failure as Error).message).toContain("'error' was not being read after 50 ms");
    expect(closed).toBe(true);
  });
});
