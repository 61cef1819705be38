import { afterEach, describe, expect, it } from 'vitest';
import { messageSize } from '../src/endpoint/outgoing.ts';
import {
  ConfigurationError,
  DeserializationError,
  defineMessage,
  Headers,
  recoverabilityDefaults,
  UsageError,
} from '../src/index.ts';
import { failureHeaders } from '../src/recoverability/failure-headers.ts';
import {
  actionProblem,
  type RecoverabilityPolicy,
  resolveRecoverability,
} from '../src/recoverability/recoverability.ts';
import { packHeaders } from '../src/transport/index.ts';
import { putRaw, readQueue, recordingLogger, world } from './helpers.ts';

const Job = defineMessage<{ n: number }>('t.Job');

const failure = (
  immediateAttempts: number,
  delayedRetries: number,
  error: unknown = new Error('x'),
) => ({
  error,
  messageId: 'm',
  messageType: Job.name,
  headers: {},
  immediateAttempts,
  delayedRetries,
});

describe('the default policy', () => {
  const policy = resolveRecoverability();

  it('retries 5 times at once, then 3 delayed rounds of 10, 20 and 30 s, then the error queue', () => {
    expect(recoverabilityDefaults).toMatchObject({
      immediateRetries: 5,
      delayedRetriesCount: 3,
      errorQueue: 'error',
    });
    expect(policy.decide(failure(5, 0), true)).toEqual({ kind: 'immediate-retry' });
    expect(policy.decide(failure(6, 0), true)).toEqual({ kind: 'delayed-retry', delayMs: 10_000 });
    expect(policy.decide(failure(6, 1), true)).toEqual({ kind: 'delayed-retry', delayMs: 20_000 });
    expect(policy.decide(failure(6, 2), true)).toEqual({ kind: 'delayed-retry', delayMs: 30_000 });
    expect(policy.decide(failure(6, 3), true)).toEqual({ kind: 'move-to-error' });
  });

  it('skips delayed retries where the transport cannot delay', () => {
    expect(policy.decide(failure(6, 0), false)).toEqual({ kind: 'move-to-error' });
  });

  it('sends messages no retry can fix straight to the error queue', () => {
    expect(policy.decide(failure(1, 0, new DeserializationError('bad')), true)).toEqual({
      kind: 'move-to-error',
    });
    // A handler misusing the API fails the same way on every retry.
    expect(policy.decide(failure(1, 0, new UsageError('no reply-to')), true)).toEqual({
      kind: 'move-to-error',
    });
  });

  it('takes delay functions and a custom policy that sees the default action', () => {
    const custom = resolveRecoverability({
      delayedRetries: { count: 2, delayMs: (round) => round * 1000 + 1 },
      policy: (info, action) =>
        info.error instanceof RangeError ? { kind: 'discard', reason: 'range' } : action,
    });
    expect(custom.decide(failure(6, 1), true)).toEqual({ kind: 'delayed-retry', delayMs: 2001 });
    expect(custom.decide(failure(1, 0, new RangeError('r')), true)).toEqual({
      kind: 'discard',
      reason: 'range',
    });
  });
});

describe('actions a policy returns', () => {
  it('are checked before they are carried out', () => {
    expect(actionProblem({ kind: 'immediate-retry' })).toBeUndefined();
    expect(actionProblem({ kind: 'delayed-retry', delayMs: 0 })).toBeUndefined();
    expect(actionProblem({ kind: 'move-to-error', errorQueue: 'poison' })).toBeUndefined();
    expect(actionProblem({ kind: 'discard', reason: 'stale' })).toBeUndefined();
    for (const delayMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, '10', undefined]) {
      expect(actionProblem({ kind: 'delayed-retry', delayMs })).toMatch(/delayed retry of/);
    }
    for (const errorQueue of ['..', '', '../etc', 'a/b', 42]) {
      expect(actionProblem({ kind: 'move-to-error', errorQueue })).toMatch(/not a valid name/);
    }
    expect(actionProblem({ kind: 'discard' })).toMatch(/without a reason/);
    expect(actionProblem({ kind: 'retry-forever' })).toMatch(
      /no action it knows \("retry-forever"\)/,
    );
    expect(actionProblem(undefined)).toMatch(/no action it knows \(undefined\)/);
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('trap');
        },
      },
    );
    expect(actionProblem(hostile)).toMatch(/no action it knows/);
  });

  it('a delay that is not a number of ms >= 0 is refused at configuration', () => {
    for (const delayMs of [-1, Number.NaN, Number.POSITIVE_INFINITY, '10']) {
      expect(() =>
        resolveRecoverability({ delayedRetries: { delayMs: delayMs as number } }),
      ).toThrow(ConfigurationError);
    }
    expect(() => resolveRecoverability({ delayedRetries: { delayMs: 0 } })).not.toThrow();
  });
});

describe('failure headers', () => {
  it('fit the room left under the size limit: the stack is cut first, then the message', () => {
    const error = new Error('m'.repeat(3_000));
    const full = failureHeaders(error, 'Sales');
    expect(full[Headers.ExceptionStack]?.length).toBeGreaterThan(3_000);
    const noBody = new Uint8Array(0);
    const roomy = failureHeaders(error, 'Sales', messageSize(full, noBody) - 100);
    expect(messageSize(roomy, noBody)).toBeLessThanOrEqual(messageSize(full, noBody) - 100);
    expect(roomy[Headers.ExceptionMessage]).toBe(full[Headers.ExceptionMessage]);
    expect(roomy[Headers.ExceptionStack]?.endsWith('…')).toBe(true);
    const tight = failureHeaders(error, 'Sales', 1_000);
    expect(messageSize(tight, noBody)).toBeLessThanOrEqual(1_000);
    expect(tight[Headers.ExceptionStack]).toBeUndefined();
    expect(tight[Headers.ExceptionMessage]?.endsWith('…')).toBe(true);
    expect(tight[Headers.FailedQueue]).toBe('Sales');
  });

  it('fit the room in UTF-8 bytes when the error speaks another script', () => {
    const error = new Error('é'.repeat(3_000));
    const utf8Size = (headers: Record<string, string>) =>
      Object.entries(headers).reduce(
        (sum, [name, value]) => sum + Buffer.byteLength(name) + Buffer.byteLength(value),
        0,
      );
    for (const room of [1_000, 3_000, 6_500]) {
      const headers = failureHeaders(error, 'Sales', room);
      expect(utf8Size(headers)).toBeLessThanOrEqual(room);
      // Cut to fit, not dropped: the part that fits is kept, whole characters only.
      expect(headers[Headers.ExceptionMessage]).toMatch(/^é{300,}…?$/);
    }
  });
});

describe('failure headers, cut further', () => {
  const noBody = new Uint8Array(0);
  /** True when no surrogate is left without its other half. */
  const wellFormed = (value: string) => Buffer.from(value, 'utf8').toString('utf8') === value;
  /** The bytes of the one `tidings.headers` entry a broker transport packs them into. */
  const packedSize = (headers: Record<string, string>) =>
    Buffer.byteLength(packHeaders(headers, new Set()).packed ?? '');

  it('cut the exception type and code too when they alone are over the room', () => {
    const error = Object.assign(new Error('m'), {
      name: 'N'.repeat(10_000),
      code: 'C'.repeat(10_000),
    });
    const headers = failureHeaders(error, 'Sales', 500);
    expect(messageSize(headers, noBody)).toBeLessThanOrEqual(500);
    expect(headers[Headers.FailedQueue]).toBe('Sales');
    expect(headers[Headers.TimeOfFailure]).toBeDefined();
    // The stack and the message go first; type and code are cut after them.
    expect(headers[Headers.ExceptionStack]).toBeUndefined();
    const type = headers[Headers.ExceptionType] ?? '';
    expect(type).toMatch(/^N{100,}…$/);
  });

  it('keep whole characters when the length cap cuts the message and stack', () => {
    // 'a' then pairs: the 4,096th unit is the first half of a pair.
    const error = new Error(`a${'😀'.repeat(3_000)}`);
    const headers = failureHeaders(error, 'Sales');
    const message = headers[Headers.ExceptionMessage] ?? '';
    expect(message.endsWith('…')).toBe(true);
    expect(wellFormed(message)).toBe(true);
    expect(wellFormed(headers[Headers.ExceptionStack] ?? '')).toBe(true);
  });

  it('fit the room as packed JSON, where a control character takes six bytes', () => {
    const error = new Error('\u0001'.repeat(3_000));
    for (const room of [1_000, 4_000, 20_000]) {
      const headers = failureHeaders(error, 'Sales', room);
      expect(messageSize(headers, noBody)).toBeLessThanOrEqual(room);
      expect(packedSize(headers)).toBeLessThanOrEqual(room);
      // Cut to fit, not dropped.
      const message = headers[Headers.ExceptionMessage] ?? '';
      expect(message.replace(/…$/, '')).toBe('\u0001'.repeat(message.replace(/…$/, '').length));
      expect(message.length).toBeGreaterThan(100);
    }
  });
});

describe('recoverability on an endpoint', () => {
  const w = world();
  afterEach(() => w.stopAll());

  it('a delayed retry succeeds, carrying its round in a header', async () => {
    const rounds: string[] = [];
    const server = w.endpoint({
      name: 'Delayed',
      recoverability: { immediateRetries: 1, delayedRetries: { count: 2, delayMs: 30 } },
    });
    server.handle(Job, (_p, ctx) => {
      rounds.push(ctx.headers[Headers.DelayedRetries] ?? '0');
      if (rounds.length < 4) throw new Error('not yet');
    });
    await server.start();
    const client = w.endpoint({ name: 'DelayedClient', sendOnly: true });
    await client.start();
    await client.send(Job, { n: 1 }, { to: 'Delayed' });
    await expect.poll(() => server.stats.handled).toBe(1);
    expect(rounds).toEqual(['0', '0', '1', '1']);
    expect(server.stats).toMatchObject({
      immediateRetries: 2,
      delayedRetries: 1,
      movedToErrorQueue: 0,
    });
  });

  it('a custom policy can move an error straight to a queue of its choosing', async () => {
    const server = w.endpoint({
      name: 'Policy',
      recoverability: { policy: () => ({ kind: 'move-to-error', errorQueue: 'poison' }) },
    });
    server.handle(Job, () => {
      throw new Error('fatal');
    });
    await server.start();
    const poison = await readQueue(w.transport, 'poison');
    const client = w.endpoint({ name: 'PolicyClient', sendOnly: true });
    await client.start();
    await client.send(Job, { n: 1 }, { to: 'Policy' });
    await expect.poll(() => poison.messages.length).toBe(1);
    expect(poison.messages[0]?.headers[Headers.ExceptionMessage]).toBe('fatal');
    expect(server.stats.immediateRetries).toBe(0);
    await poison.close();
  });

  it.each([
    [
      'throws a value that is not an Error',
      'threw: boom',
      (() => {
        throw 'boom';
      }) as RecoverabilityPolicy,
    ],
    [
      'names an error queue that could name a path',
      'not a valid name',
      (() => ({
        kind: 'move-to-error',
        errorQueue: '..',
      })) as RecoverabilityPolicy,
    ],
    [
      'asks for a delay that is not a number',
      'delayed retry of NaN',
      (() => ({
        kind: 'delayed-retry',
        delayMs: Number.NaN,
      })) as RecoverabilityPolicy,
    ],
    [
      'returns an action it does not know',
      'no action it knows',
      (() => ({
        kind: 'retry-forever',
      })) as unknown as RecoverabilityPolicy,
    ],
  ])(
    'a policy that %s: the message goes to the error queue once, no loop',
    async (_, logged, policy) => {
      const logger = recordingLogger();
      let attempts = 0;
      const server = w.endpoint({
        name: `BadPolicy${attempts}${logged.replace(/\W/g, '')}`,
        logger,
        recoverability: { policy },
      });
      server.handle(Job, () => {
        attempts++;
        throw new Error('fatal');
      });
      await server.start();
      const errors = await readQueue(w.transport, 'error');
      const client = w.endpoint({
        name: `BadPolicyClient${logged.replace(/\W/g, '')}`,
        sendOnly: true,
      });
      await client.start();
      await client.send(Job, { n: 1 }, { to: server.name });
      await expect.poll(() => errors.messages.length).toBe(1);
      expect(errors.messages[0]?.headers[Headers.ExceptionMessage]).toBe('fatal');
      expect(attempts).toBe(1);
      expect(server.stats.movedToErrorQueue).toBe(1);
      const complaint = logger.lines.find((l) => /recoverability policy/.test(l.message));
      expect(complaint?.level).toBe('error');
      expect(complaint?.message).toContain(logged);
      await errors.close();
    },
  );

  it('warns at start when delayed retries are configured but the transport cannot delay', async () => {
    const logger = recordingLogger();
    const noDelay = {
      ...w.transport,
      capabilities: { ...w.transport.capabilities, delayedDelivery: false },
    };
    const server = w.endpoint({ name: 'NoDelay', transport: noDelay, logger });
    await server.start();
    expect(
      logger.lines.some((l) => l.level === 'warn' && /cannot delay delivery/.test(l.message)),
    ).toBe(true);
  });

  it.each(['-Infinity', '-3', 'two'])(
    'a hostile delayed-retries header (%s) counts as none: the message still reaches the error queue',
    async (value) => {
      let attempts = 0;
      const server = w.endpoint({
        name: `Hostile-${value.replace(/\W/g, '')}`,
        recoverability: { immediateRetries: 0, delayedRetries: { count: 2, delayMs: 10 } },
      });
      server.handle(Job, () => {
        attempts++;
        throw new Error('always');
      });
      await server.start();
      const errors = await readQueue(w.transport, 'error');
      await putRaw(w.transport, server.name, `hostile-${value}`, {
        [Headers.MessageType]: Job.name,
        [Headers.DelayedRetries]: value,
      });
      await expect.poll(() => errors.messages.length).toBe(1);
      expect(attempts).toBe(3);
      expect(server.stats.delayedRetries).toBe(2);
      await errors.close();
    },
  );

  it('a header that is not a string makes the message unreadable, not a redelivery loop', async () => {
    let attempts = 0;
    const server = w.endpoint({
      name: 'NotAString',
      recoverability: { unreadableMessages: 'error-queue' },
    });
    server.handle(Job, () => void attempts++);
    await server.start();
    const errors = await readQueue(w.transport, 'error');
    // A transport's bug, or a foreign property passed on as it came.
    await putRaw(w.transport, server.name, 'numeric-code', {
      [Headers.MessageType]: Job.name,
      [Headers.ReturnCode]: 5 as unknown as string,
    });
    await expect.poll(() => errors.messages.length).toBe(1);
    expect(errors.messages[0]?.headers[Headers.ExceptionMessage]).toContain(
      `header '${Headers.ReturnCode}' is not a string`,
    );
    expect(attempts).toBe(0);
    await errors.close();
  });

  it('nothing is lost when the error queue cannot be reached: the message comes back', async () => {
    let attempts = 0;
    let refuse = 1;
    const deliveries: number[] = [];
    // The real in-memory transport, with a fault injected into the move to the error queue.
    const faulty = {
      ...w.transport,
      async openEndpoint(...args: Parameters<typeof w.transport.openEndpoint>) {
        const connection = await w.transport.openEndpoint(...args);
        return {
          ...connection,
          async dispatch(operations: Parameters<typeof connection.dispatch>[0]) {
            const toErrorQueue = operations.some(
              (o) => o.destination.kind === 'queue' && o.destination.queue === 'error',
            );
            if (toErrorQueue && refuse-- > 0) throw new Error('error queue unreachable');
            return connection.dispatch(operations);
          },
          startReceiving: (settings: Parameters<typeof connection.startReceiving>[0]) =>
            connection.startReceiving({
              ...settings,
              onMessage: (message) => {
                deliveries.push(message.deliveryCount ?? 0);
                return settings.onMessage(message);
              },
            }),
        };
      },
    };
    const server = w.endpoint({
      name: 'Unreachable',
      transport: faulty,
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
    });
    server.handle(Job, () => {
      attempts++;
      throw new Error('always');
    });
    await server.start();
    const errors = await readQueue(w.transport, 'error');
    const client = w.endpoint({ name: 'UnreachableClient', sendOnly: true });
    await client.start();
    await client.send(Job, { n: 1 }, { to: 'Unreachable' });
    // The message comes back after a one-second pause: wait longer than poll's default second.
    await expect.poll(() => errors.messages.length, { timeout: 10_000 }).toBe(1);
    expect(attempts).toBe(2);
    expect(deliveries).toEqual([1, 2]);
    expect(server.stats.movedToErrorQueue).toBe(1);
    await errors.close();
  });
});

describe('thrown values that throw when read', () => {
  const w = world();
  afterEach(() => w.stopAll());

  const boom = () => {
    throw new Error('read me not');
  };
  const withThrowingMessage = new Error('hidden');
  Object.defineProperty(withThrowingMessage, 'message', { get: boom });
  const shapes: Array<[string, () => unknown, string, string]> = [
    // name, what the handler throws, expected exception type, expected message (start)
    [
      'an object whose getter throws',
      () => ({
        get code() {
          return boom();
        },
      }),
      'object',
      '[object Object]',
    ],
    ['an object without a prototype', () => Object.create(null), 'object', 'a thrown object'],
    [
      'a Proxy whose every trap throws',
      () => new Proxy({}, { get: boom, getPrototypeOf: boom, has: boom, ownKeys: boom }),
      'object',
      'a thrown object',
    ],
    ['an Error whose message getter throws', () => withThrowingMessage, 'Error', 'Error (its'],
  ];

  it.each(shapes)('%s reaches the error queue', async (name, thrown, type, message) => {
    let attempts = 0;
    const server = w.endpoint({
      name: `Thrown-${name.replace(/\W/g, '')}`,
      recoverability: { immediateRetries: 1, delayedRetries: { count: 0 } },
    });
    server.handle(Job, () => {
      attempts++;
      throw thrown();
    });
    await server.start();
    const errors = await readQueue(w.transport, 'error');
    await putRaw(w.transport, server.name, `thrown-${name}`, { [Headers.MessageType]: Job.name });
    await expect.poll(() => errors.messages.length).toBe(1);
    expect(attempts).toBe(2);
    const headers = errors.messages[0]?.headers ?? {};
    expect(headers[Headers.ExceptionType]).toBe(type);
    expect(headers[Headers.ExceptionMessage]?.startsWith(message)).toBe(true);
    expect(headers[Headers.FailedQueue]).toBe(server.name);
    expect(headers[Headers.ExceptionCode]).toBeUndefined();
    await errors.close();
  });
});

describe('unreadable messages on a transport with its own dead-letter queue', () => {
  const w = world();
  afterEach(() => w.stopAll());

  async function serverWith(
    unreadableMessages?: 'dead-letter' | 'error-queue',
    headers: Record<string, string> = {},
  ) {
    const outcomes: unknown[] = [];
    // The real in-memory transport, declaring a native dead-letter queue and recording outcomes.
    const withDeadLetter = {
      ...w.transport,
      capabilities: { ...w.transport.capabilities, nativeDeadLetter: true },
      async openEndpoint(...args: Parameters<typeof w.transport.openEndpoint>) {
        const connection = await w.transport.openEndpoint(...args);
        return {
          ...connection,
          startReceiving: (settings: Parameters<typeof connection.startReceiving>[0]) =>
            connection.startReceiving({
              ...settings,
              onMessage: async (message) => {
                const outcome = await settings.onMessage(message);
                outcomes.push(outcome);
                return outcome === 'abandon' ? 'abandon' : 'complete';
              },
            }),
        };
      },
    };
    const server = w.endpoint({
      name: `Dlq-${unreadableMessages ?? 'default'}`,
      transport: withDeadLetter,
      ...(unreadableMessages ? { recoverability: { unreadableMessages } } : {}),
    });
    server.handle(Job, () => {});
    await server.start();
    await putRaw(
      w.transport,
      server.name,
      'bad',
      { [Headers.MessageType]: Job.name, ...headers },
      Buffer.from('{"n":'),
    );
    return { server, outcomes };
  }

  it('settles them as dead-letter with the reason, by default', async () => {
    const { server, outcomes } = await serverWith();
    await expect.poll(() => outcomes.length).toBe(1);
    expect(outcomes[0]).toMatchObject({ kind: 'dead-letter', reason: 'TIDINGS_DESERIALIZATION' });
    expect(server.stats).toMatchObject({ deadLettered: 1, movedToErrorQueue: 0 });
  });

  it('keep whole characters in the reason when it is cut to length', async () => {
    // The content type appears in the error; pad it so the cut falls inside a surrogate pair.
    const before = `Message '${Job.name}' has content type '`.length;
    const pad = 'a'.repeat((4_095 - before) % 2);
    const { outcomes } = await serverWith(undefined, {
      [Headers.ContentType]: `${pad}${'😀'.repeat(3_000)}`,
    });
    await expect.poll(() => outcomes.length).toBe(1);
    const description = (outcomes[0] as { description: string }).description;
    expect(description.length).toBeGreaterThan(4_000);
    expect(Buffer.from(description, 'utf8').toString('utf8')).toBe(description);
  });

  it("moves them to the error queue with unreadableMessages: 'error-queue'", async () => {
    const { server, outcomes } = await serverWith('error-queue');
    await expect.poll(() => outcomes.length).toBe(1);
    expect(outcomes[0]).toBe('complete');
    expect(server.stats).toMatchObject({ deadLettered: 0, movedToErrorQueue: 1 });
  });

  it('the move to the error queue names the received message it copies', async () => {
    const received: unknown[] = [];
    const copies: unknown[] = [];
    const watched = {
      ...w.transport,
      async openEndpoint(...args: Parameters<typeof w.transport.openEndpoint>) {
        const connection = await w.transport.openEndpoint(...args);
        return {
          ...connection,
          async dispatch(operations: Parameters<typeof connection.dispatch>[0]) {
            for (const o of operations) if (o.copyOf !== undefined) copies.push(o.copyOf);
            return connection.dispatch(operations);
          },
          startReceiving: (settings: Parameters<typeof connection.startReceiving>[0]) =>
            connection.startReceiving({
              ...settings,
              onMessage: (message) => {
                received.push(message);
                return settings.onMessage(message);
              },
            }),
        };
      },
    };
    const server = w.endpoint({
      name: 'Copies',
      transport: watched,
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
    });
    server.handle(Job, () => {
      throw new Error('always');
    });
    await server.start();
    const client = w.endpoint({ name: 'CopiesClient', sendOnly: true });
    await client.start();
    await client.send(Job, { n: 1 }, { to: 'Copies' });
    await expect.poll(() => server.stats.movedToErrorQueue).toBe(1);
    expect(copies).toHaveLength(1);
    expect(copies[0]).toBe(received[0]);
  });
});
