import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ConfigurationError,
  createEndpoint,
  createInMemoryTransport,
  defineMessage,
  type Instrumentation,
  type Logger,
} from '../src/index.ts';
import { recordingLogger, world } from './helpers.ts';

const Work = defineMessage<{ n: number }>('instr.Work');
const Ping = defineMessage<{ n: number }>('instr.Ping');
const Pong = defineMessage<{ n: number }>('instr.Pong');

/** Records, as text, each call core makes to its instrumentation. */
function recordingInstrumentation() {
  const calls: string[] = [];
  const instrumentation: Instrumentation = {
    wrapLogger: (logger: Logger): Logger => ({
      ...logger,
      error: (message, fields) => logger.error(`[wrapped] ${message}`, fields),
    }),
    instrumentEndpoint(endpoint, connection) {
      calls.push(`start ${endpoint.endpointName} ${endpoint.transportName}`);
      return {
        connection: {
          ...connection,
          dispatch: (operations) => {
            for (const op of operations) {
              const to = op.destination.kind === 'queue' ? op.destination.queue : 'publish';
              calls.push(`dispatch ${to}${op.delayMs ? ' delayed' : ''}`);
            }
            return connection.dispatch(operations);
          },
        },
        received(message) {
          calls.push(`received ${message.queue}`);
          return {
            attempt(attempt, run) {
              calls.push(`attempt ${attempt}`);
              return run();
            },
            failed(error, next) {
              calls.push(`failed ${(error as Error).message} -> ${next}`);
            },
            settled(outcome) {
              calls.push(`settled ${typeof outcome === 'string' ? outcome : outcome.kind}`);
            },
          };
        },
        request(messageType, destination) {
          calls.push(`request ${messageType} to ${destination}`);
          return {
            run: (fn) => {
              calls.push('request run');
              return fn();
            },
            settled: (error) => {
              calls.push(`request settled ${error === undefined ? 'ok' : (error as Error).name}`);
            },
          };
        },
      };
    },
  };
  return { calls, instrumentation };
}

describe('instrumentation hook', () => {
  let w = world();
  afterEach(async () => {
    await w.stopAll();
    w = world();
  });

  it('sees each attempt, what followed each failure, the dispatches and the outcome', async () => {
    const { calls, instrumentation } = recordingInstrumentation();
    const logger = recordingLogger();
    const server = w.endpoint({
      name: 'InstrServer',
      instrumentation,
      logger,
      recoverability: { immediateRetries: 1, delayedRetries: { count: 1, delayMs: 10 } },
    });
    server.handle(Work, () => {
      throw new Error('boom');
    });
    await server.start();
    const client = w.endpoint({ name: 'InstrClient', routes: { [Work.name]: 'InstrServer' } });
    await client.start();
    await client.send(Work, { n: 1 });
    await vi.waitFor(() => expect(server.stats.movedToErrorQueue).toBe(1));
    await vi.waitFor(() => expect(calls.filter((c) => c.startsWith('settled'))).toHaveLength(2));
    expect(calls).toEqual([
      'start InstrServer in-memory',
      'received InstrServer',
      'attempt 1',
      'attempt 1',
      'failed boom -> immediate-retry',
      'attempt 2',
      'dispatch InstrServer delayed',
      'failed boom -> delayed-retry',
      'settled complete',
      'received InstrServer',
      'attempt 1',
      'attempt 1',
      'failed boom -> immediate-retry',
      'attempt 2',
      'dispatch error',
      'failed boom -> error-queue',
      'dispatch InstrClient',
      'settled complete',
    ]);
    // The endpoint logs through the wrapped logger.
    expect(logger.lines.some((l) => l.message.startsWith('[wrapped] Moved a message'))).toBe(true);
  });

  it('follows a request until its reply, and a message that cannot be read', async () => {
    const { calls, instrumentation } = recordingInstrumentation();
    const server = w.endpoint({ name: 'InstrReplier' });
    server.handle(Ping, (ping, ctx) => ctx.reply(Pong, { n: ping.n }));
    await server.start();
    const client = w.endpoint({
      name: 'InstrAsker',
      instanceId: 'a1',
      instrumentation,
      routes: { [Ping.name]: 'InstrReplier' },
    });
    await client.start();
    await client.request(Ping, { n: 1 }, { expect: Pong });
    await vi.waitFor(() => expect(calls).toContain('settled complete'));
    expect(calls).toEqual([
      'start InstrAsker in-memory',
      'request instr.Ping to InstrReplier',
      'request run',
      'dispatch InstrReplier',
      'received InstrAsker.a1',
      'attempt 1',
      // The reply is handled at once; the caller's await resumes after.
      'settled complete',
      'request settled ok',
    ]);
  });

  it('refuses something that is not an instrumentation', () => {
    expect(() =>
      createEndpoint({
        name: 'X',
        transport: createInMemoryTransport(),
        instrumentation: {} as Instrumentation,
      }),
    ).toThrow(ConfigurationError);
  });
});
