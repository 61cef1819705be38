import { afterEach, describe, expect, it } from 'vitest';
import { defineMessage, Headers, type Transport, UsageError } from '../src/index.ts';
import type { TransportOperation } from '../src/transport/index.ts';
import { sleep, world } from './helpers.ts';

const Ask = defineMessage<{ n: number }>('x.Ask');
const Answer = defineMessage<{ n: number }>('x.Answer');

/** The in-memory transport, recording every operation dispatched through it. */
function recording(transport: Transport) {
  const dispatched: TransportOperation[] = [];
  const wrapped: Transport = {
    ...transport,
    async openEndpoint(...args: Parameters<Transport['openEndpoint']>) {
      const connection = await transport.openEndpoint(...args);
      return {
        ...connection,
        dispatch(operations: readonly TransportOperation[]) {
          dispatched.push(...operations);
          return connection.dispatch(operations);
        },
        startReceiving: (settings) => connection.startReceiving(settings),
        stopReceiving: () => connection.stopReceiving(),
        close: () => connection.close(),
      };
    },
  };
  return { transport: wrapped, dispatched };
}

const ofType = (operations: readonly TransportOperation[], type: string, intent: string) =>
  operations.filter(
    (o) =>
      o.message.headers[Headers.MessageType] === type &&
      o.message.headers[Headers.Intent] === intent,
  );

describe('Durability by purpose (ADR 13)', () => {
  const w = world();
  afterEach(() => w.stopAll());

  async function pair() {
    const { transport, dispatched } = recording(w.transport);
    const server = w.endpoint({ name: 'ExpressServer', transport });
    server.handle(Ask, async (ask, ctx) => {
      await ctx.reply(Answer, { n: ask.n });
    });
    const answered: number[] = [];
    const client = w.endpoint({
      name: 'ExpressClient',
      transport,
      routes: { [Ask.name]: 'ExpressServer' },
    });
    client.handle(Answer, (answer) => {
      answered.push(answer.n);
    });
    await server.start();
    await client.start();
    return { server, client, dispatched, answered };
  }

  it('request() marks the request, and the reply to it is express', async () => {
    const { client, dispatched } = await pair();
    await client.request(Ask, { n: 1 }, { expect: Answer });
    const [request] = ofType(dispatched, Ask.name, 'send');
    expect(request?.message.headers[Headers.ReplyDurability]).toBe('express');
    // The request itself stays durable unless asked otherwise.
    expect(request?.express).toBeUndefined();
    const [reply] = ofType(dispatched, Answer.name, 'reply');
    expect(reply?.express).toBe(true);
  });

  it('a fault reply is express for a request, durable for a plain send', async () => {
    const { transport, dispatched } = recording(w.transport);
    const noHandler = w.endpoint({ name: 'FaultServer', transport });
    noHandler.handle(Answer, async () => {});
    await noHandler.start();
    const client = w.endpoint({
      name: 'FaultClient',
      transport,
      routes: { [Ask.name]: 'FaultServer' },
    });
    await client.start();
    await expect(client.request(Ask, { n: 1 }, { expect: Answer })).rejects.toThrow(/error queue/);
    await client.send(Ask, { n: 2 });
    await expect.poll(() => ofType(dispatched, 'tidings.Fault', 'fault').length).toBe(2);
    const faults = ofType(dispatched, 'tidings.Fault', 'fault');
    expect(faults.map((fault) => fault.express === true)).toEqual([true, false]);
  });

  it('register() marks the request, and the reply to it is express', async () => {
    const { client, dispatched } = await pair();
    await client.send(Ask, { n: 2 }).register(() => {}, undefined, { expect: Answer });
    const [request] = ofType(dispatched, Ask.name, 'send');
    expect(request?.message.headers[Headers.ReplyDurability]).toBe('express');
    expect(ofType(dispatched, Answer.name, 'reply')[0]?.express).toBe(true);
  });

  it('a plain send is not marked, and the reply to it (full duplex) stays durable', async () => {
    const { client, dispatched, answered } = await pair();
    await client.send(Ask, { n: 3 });
    while (answered.length === 0) await sleep(2);
    const [request] = ofType(dispatched, Ask.name, 'send');
    expect(request?.message.headers[Headers.ReplyDurability]).toBeUndefined();
    const [reply] = ofType(dispatched, Answer.name, 'reply');
    expect(reply?.express).toBeUndefined();
    expect(reply?.message.headers[Headers.ReplyDurability]).toBeUndefined();
  });

  it('express: true makes the send itself express, and only that send', async () => {
    const { client, dispatched, answered } = await pair();
    await client.send(Ask, { n: 4 }, { express: true });
    await client.request(Ask, { n: 5 }, { expect: Answer, express: true });
    await client.send(Ask, { n: 6 });
    while (answered.length < 2) await sleep(2);
    const sends = ofType(dispatched, Ask.name, 'send');
    expect(sends.map((o) => o.express)).toEqual([true, true, undefined]);
  });

  it('refuses an express option that is not a boolean', async () => {
    const { client } = await pair();
    await expect(
      client.send(Ask, { n: 7 }, { express: 'yes' as unknown as boolean }),
    ).rejects.toBeInstanceOf(UsageError);
  });
});
