import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  defineMessage,
  type EndpointOptions,
  Fault,
  Headers,
  type RemoteFailure,
  RemoteFailureError,
  RequestTimeoutError,
} from '../src/index.ts';
import { putRaw, readQueue, world } from './helpers.ts';

const Ask = defineMessage<{ n: number }>('f.Ask');
const Answer = defineMessage<{ n: number }>('f.Answer');
const Strict = defineMessage('f.Strict', z.object({ n: z.number() }));
const Happened = defineMessage<{ n: number }>('f.Happened');

const noRetries = { immediateRetries: 0, delayedRetries: { count: 0 } } as const;

describe('fault replies: a request whose message fails for good rejects at once', () => {
  const w = world();
  afterEach(() => w.stopAll());

  async function pair(server: Partial<EndpointOptions> = {}) {
    const sales = w.endpoint({ name: 'Sales', recoverability: noRetries, ...server });
    const web = w.endpoint({
      name: 'Web',
      // Long enough that a test waiting for the timeout instead of the fault would fail.
      requestTimeoutMs: 60_000,
      routes: { [Ask.name]: 'Sales', [Strict.name]: 'Sales' },
    });
    return { sales, web };
  }

  it('no handler: RemoteFailureError naming the type and code, without the message by default', async () => {
    const { sales, web } = await pair();
    await sales.start();
    await web.start();
    const error = await web.request(Ask, { n: 1 }, { expect: Answer }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteFailureError);
    const fault = (error as RemoteFailureError).fault;
    expect(fault).toMatchObject({
      messageType: Ask.name,
      exceptionType: 'NoHandlerError',
      code: 'TIDINGS_NO_HANDLER',
    });
    expect(fault.message).toBeUndefined();
    expect((error as RemoteFailureError).code).toBe('TIDINGS_REMOTE_FAILURE');
    expect(sales.stats.movedToErrorQueue).toBe(1);
    expect(web.stats.pendingRequests).toBe(0);
  });

  it('a handler that fails every retry, with the message under faultReplies: type-and-message', async () => {
    const { sales, web } = await pair({ faultReplies: 'type-and-message' });
    sales.handle(Ask, async () => {
      throw new TypeError('stock is negative');
    });
    await sales.start();
    await web.start();
    const error = await web.request(Ask, { n: 2 }, { expect: Answer }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteFailureError);
    expect((error as RemoteFailureError).fault).toMatchObject({
      exceptionType: 'TypeError',
      message: 'stock is negative',
    });
  });

  it('a payload its schema refuses: ValidationError', async () => {
    const { sales, web } = await pair();
    sales.handle(Strict, async () => {});
    await sales.start();
    await web.start();
    const error = await web
      .request(Strict, { n: 'x' } as unknown as { n: number }, { expect: Answer })
      .catch((e: unknown) => e);
    expect((error as RemoteFailureError).fault?.exceptionType).toBe('ValidationError');
  });

  it('the callback form is rejected too', async () => {
    const { sales, web } = await pair();
    await sales.start();
    await web.start();
    const registered = web.send(Ask, { n: 3 }).register(() => 'answered');
    await expect(registered).rejects.toBeInstanceOf(RemoteFailureError);
  });

  it('faultReplies: off sends none, so the request waits for its timeout as before', async () => {
    const { sales, web } = await pair({ faultReplies: 'off' });
    await sales.start();
    await web.start();
    await expect(
      web.request(Ask, { n: 4 }, { expect: Answer, timeoutMs: 300 }),
    ).rejects.toBeInstanceOf(RequestTimeoutError);
    expect(sales.stats.movedToErrorQueue).toBe(1);
  });

  it('refuses an unknown faultReplies setting at configuration', () => {
    expect(() => w.endpoint({ name: 'Bad', faultReplies: 'all' as unknown as 'off' })).toThrow(
      /faultReplies/,
    );
  });
});

describe('fault replies reach reply handlers, and never loop', () => {
  const w = world();
  afterEach(() => w.stopAll());

  it('a plain send (full duplex): the endpoint handles Fault like any reply type', async () => {
    const sales = w.endpoint({ name: 'Sales2', recoverability: noRetries });
    const web = w.endpoint({ name: 'Web2', routes: { [Ask.name]: 'Sales2' } });
    const faults: RemoteFailure[] = [];
    web.handle(Fault, async (fault, ctx) => {
      faults.push(fault);
      expect(ctx.headers[Headers.Intent]).toBe('fault');
    });
    await sales.start();
    await web.start();
    await web.send(Ask, { n: 5 });
    await expect.poll(() => faults.length).toBe(1);
    expect(faults[0]).toMatchObject({ messageType: Ask.name, exceptionType: 'NoHandlerError' });
  });

  it('a fault nobody waits for and no handler takes is discarded and counted, not answered', async () => {
    const web = w.endpoint({ name: 'Web3', recoverability: noRetries });
    web.handle(Answer, async () => {});
    await web.start();
    const back = await readQueue(w.transport, 'Elsewhere');
    // A fault whose own reply-to points somewhere: it must never produce a fault in turn.
    await putRaw(
      w.transport,
      'Web3',
      'fault-1',
      {
        [Headers.MessageType]: Fault.name,
        [Headers.Intent]: 'fault',
        [Headers.ReplyTo]: 'Elsewhere',
      },
      Buffer.from('{"messageId":"m","exceptionType":"Error"}'),
    );
    await expect.poll(() => web.stats.unmatchedReplies).toBe(1);
    expect(web.stats.movedToErrorQueue).toBe(0);
    expect(back.messages).toHaveLength(0);
    await back.close();
  });

  it('events and replies get no fault reply', async () => {
    const errors = await readQueue(w.transport, 'Sales4.error');
    const back = await readQueue(w.transport, 'Requester');
    const sales = w.endpoint({
      name: 'Sales4',
      recoverability: { ...noRetries, errorQueue: 'Sales4.error' },
    });
    sales.handle(Happened, async () => {
      throw new Error('no');
    });
    await sales.start();
    for (const intent of ['publish', 'reply']) {
      await putRaw(w.transport, 'Sales4', `m-${intent}`, {
        [Headers.MessageType]: Happened.name,
        [Headers.Intent]: intent,
        [Headers.ReplyTo]: 'Requester',
      });
    }
    await expect.poll(() => errors.messages.length).toBe(2);
    expect(back.messages).toHaveLength(0);
    await Promise.all([errors.close(), back.close()]);
  });

  it('a foreign send with a reply-to and no intent gets one, correlated to it', async () => {
    const back = await readQueue(w.transport, 'Foreign');
    const sales = w.endpoint({ name: 'Sales5', recoverability: noRetries });
    await sales.start();
    await putRaw(w.transport, 'Sales5', 'foreign-1', {
      [Headers.MessageType]: Ask.name,
      [Headers.ReplyTo]: 'Foreign',
      [Headers.CorrelationId]: 'corr-1',
    });
    await expect.poll(() => back.messages.length).toBe(1);
    const fault = back.messages[0];
    expect(fault?.headers[Headers.Intent]).toBe('fault');
    expect(fault?.headers[Headers.MessageType]).toBe('tidings.Fault');
    expect(fault?.headers[Headers.CorrelationId]).toBe('corr-1');
    expect(JSON.parse(Buffer.from(fault?.body ?? []).toString())).toEqual({
      messageId: 'foreign-1',
      messageType: Ask.name,
      exceptionType: 'NoHandlerError',
      code: 'TIDINGS_NO_HANDLER',
    });
    await back.close();
  });
});
