import { afterEach, describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  createInMemoryTransport,
  defineMessage,
  Headers,
  returnToSourceQueue,
  setLongTimeout,
  silentLogger,
} from '../src/index.ts';
import { checkTimerMs, MAX_TIMER_MS } from '../src/transport/index.ts';
import { sleep, world } from './helpers.ts';

/** Node.js fires a `setTimeout` of this many ms or more after 1 ms. */
const OVERFLOW_MS = 2 ** 31;
const Job = defineMessage<{ n: number }>('long.Job');

describe('delays of 2^31 ms or more', () => {
  let w = world();
  afterEach(async () => {
    await w.stopAll();
    w = world();
  });

  it('setLongTimeout chains timers past the setTimeout limit, and fires short ones on time', async () => {
    let fired = 0;
    const long = setLongTimeout(() => fired++, OVERFLOW_MS * 2);
    setLongTimeout(() => fired++, 5);
    await sleep(40);
    expect(fired).toBe(1);
    long.clear();
    expect(MAX_TIMER_MS).toBe(OVERFLOW_MS - 1);
  });

  it('a request waiting for a slot with timeoutMs >= 2^31 keeps waiting', async () => {
    const server = w.endpoint({ name: 'LongSlotServer' });
    server.handle(Job, () => {}); // never replies
    const client = w.endpoint({ name: 'LongSlotClient', maxPendingRequests: 1 });
    await server.start();
    await client.start();
    const abort = new AbortController();
    const first = client.request(Job, { n: 1 }, { to: 'LongSlotServer', signal: abort.signal });
    const second = client.request(
      Job,
      { n: 2 },
      { to: 'LongSlotServer', timeoutMs: OVERFLOW_MS, signal: abort.signal },
    );
    const outcome = second.then(
      () => 'replied',
      (error: Error) => error.name,
    );
    await sleep(50);
    expect(client.stats.waitingRequests).toBe(1);
    abort.abort();
    await expect(first).rejects.toThrow(/aborted/);
    expect(await outcome).toBe('RequestAbortedError');
  });

  it('stop with stopTimeoutMs >= 2^31 waits for in-flight handlers instead of abandoning them', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let aborted: boolean | undefined;
    let started: () => void = () => {};
    const handling = new Promise<void>((resolve) => {
      started = resolve;
    });
    const server = w.endpoint({ name: 'LongStopServer', stopTimeoutMs: OVERFLOW_MS });
    server.handle(Job, async (_payload, context) => {
      started();
      await held;
      aborted = context.signal.aborted;
    });
    const sender = w.endpoint({ name: 'LongStopSender', sendOnly: true });
    await server.start();
    await sender.start();
    await sender.send(Job, { n: 1 }, { to: 'LongStopServer' });
    await handling;
    const stopping = server.stop();
    await sleep(50);
    expect(server.state).toBe('stopping');
    release();
    await stopping;
    expect(aborted).toBe(false);
    expect(server.stats.handled).toBe(1);
  });

  it('an in-memory send with delayMs >= 2^31 is not delivered at once', async () => {
    const transport = createInMemoryTransport();
    const receiver = w.endpoint({ name: 'LongDelayReceiver', transport });
    receiver.handle(Job, () => {});
    const sender = w.endpoint({ name: 'LongDelaySender', transport, sendOnly: true });
    await receiver.start();
    await receiver.stop();
    await sender.start();
    await sender.send(Job, { n: 1 }, { to: 'LongDelayReceiver', delayMs: OVERFLOW_MS });
    await sleep(50);
    expect(transport.queueDepth('LongDelayReceiver')).toBe(0);
    expect(transport.scheduledCount).toBe(1);
  });

  it('returnToSourceQueue with idleMs >= 2^31 does not end the pass at once', async () => {
    const transport = createInMemoryTransport();
    const sender = w.endpoint({ name: 'LongIdleSender', transport, sendOnly: true });
    await sender.start();
    let ended = false;
    const pass = returnToSourceQueue({
      transport,
      errorQueue: 'long-idle-error',
      idleMs: OVERFLOW_MS,
    }).finally(() => {
      ended = true;
    });
    await sleep(50);
    expect(ended).toBe(false);
    // Ends the pass: a message with no failed queue is kept, and once it has come round again
    // only kept messages are left.
    const connection = await transport.openEndpoint(
      { endpointName: 'LongIdleFeeder', errorQueue: 'long-idle-error', subscriptions: [] },
      { logger: silentLogger },
    );
    await connection.dispatch([
      {
        destination: { kind: 'queue', queue: 'long-idle-error' },
        message: {
          messageId: 'kept-1',
          headers: { [Headers.MessageType]: Job.name },
          body: new Uint8Array(0),
        },
      },
    ]);
    expect(await pass).toEqual({ returned: 0, kept: 1 });
    await connection.close();
  });
});

describe('checkTimerMs', () => {
  it('takes up to MAX_TIMER_MS and refuses more with a ConfigurationError', () => {
    expect(checkTimerMs('pollMs', MAX_TIMER_MS)).toBe(MAX_TIMER_MS);
    expect(checkTimerMs('commitIntervalMs', 0, 0)).toBe(0);
    expect(() => checkTimerMs('pollMs', OVERFLOW_MS)).toThrow(ConfigurationError);
    expect(() => checkTimerMs('pollMs', OVERFLOW_MS)).toThrow(/pollMs must be at most 2147483647/);
    expect(() => checkTimerMs('pollMs', 0)).toThrow(ConfigurationError);
  });
});
