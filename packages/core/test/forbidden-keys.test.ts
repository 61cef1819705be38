import { afterEach, describe, expect, it } from 'vitest';
import {
  createJsonSerializer,
  defineMessage,
  ForbiddenKeyError,
  SerializationError,
  ValidationError,
} from '../src/index.ts';
import { world } from './helpers.ts';

const Ping = defineMessage<{ n: number; extra?: unknown }>('fk.Ping');
const Pong = defineMessage<{ n: number; extra?: unknown }>('fk.Pong');

// What JSON.parse makes of an untrusted HTTP body: an own '__proto__' key.
const polluted = () => JSON.parse('{"n":1,"extra":{"__proto__":{"admin":true}}}');
const constructorPrototype = () =>
  JSON.parse('{"n":1,"extra":[0,{"constructor":{"prototype":{"admin":true}}}]}');

describe('payloads receivers refuse', () => {
  const w = world();
  afterEach(() => w.stopAll());

  /** A server that records what it gets, and a client that routes Ping to it. */
  async function pair(name: string) {
    const got: number[] = [];
    const server = w.endpoint({ name });
    server.handle(Ping, (p) => void got.push(p.n));
    server.handle(Pong, (p) => void got.push(p.n));
    await server.start();
    const client = w.endpoint({ name: `${name}Client`, routes: { [Ping.name]: name } });
    await client.start();
    return { server, client, got };
  }

  it('send refuses a __proto__ key with ForbiddenKeyError naming where it is; nothing is sent', async () => {
    const { server, client, got } = await pair('FkSend');
    const refused = await client.send(Ping, polluted()).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(ForbiddenKeyError);
    expect(refused).toBeInstanceOf(ValidationError);
    expect(refused).toMatchObject({ code: 'TIDINGS_VALIDATION', path: ['extra', '__proto__'] });
    expect((refused as Error).message).toMatch(
      /Message 'fk\.Ping' failed validation: extra\.__proto__: receivers refuse/,
    );
    // The queue is FIFO: once the next message is handled, a refused one would have been too.
    await client.send(Ping, { n: 2 });
    await expect.poll(() => got).toEqual([2]);
    expect(server.stats.movedToErrorQueue).toBe(0);
  });

  it('request refuses a constructor.prototype key at the call and leaves nothing pending', async () => {
    const { server, client, got } = await pair('FkRequest');
    await expect(client.request(Ping, constructorPrototype())).rejects.toMatchObject({
      name: 'ForbiddenKeyError',
      path: ['extra', 1, 'constructor'],
    });
    expect(client.stats.pendingRequests).toBe(0);
    await client.send(Ping, { n: 3 });
    await expect.poll(() => got).toEqual([3]);
    expect(server.stats.movedToErrorQueue).toBe(0);
  });

  it('publish refuses it; subscribers get only the clean event', async () => {
    const { server, client, got } = await pair('FkPublish');
    await expect(client.publish(Pong, polluted())).rejects.toBeInstanceOf(ForbiddenKeyError);
    await client.publish(Pong, { n: 4 });
    await expect.poll(() => got).toEqual([4]);
    expect(server.stats.movedToErrorQueue).toBe(0);
  });

  it('reply refuses it inside the handler, which can answer otherwise', async () => {
    const refusals: unknown[] = [];
    const server = w.endpoint({ name: 'FkReply' });
    server.handle(Ping, async (p, ctx) => {
      try {
        await ctx.reply(Pong, polluted());
      } catch (error) {
        refusals.push(error);
        await ctx.reply(Pong, { n: p.n + 10 });
      }
    });
    await server.start();
    const client = w.endpoint({ name: 'FkReplyClient', routes: { [Ping.name]: 'FkReply' } });
    await client.start();
    await expect(client.request(Ping, { n: 1 }, { expect: Pong })).resolves.toEqual({ n: 11 });
    expect(refusals).toEqual([expect.any(ForbiddenKeyError)]);
    expect(client.stats.movedToErrorQueue).toBe(0);
  });

  it('keys that only look alike pass: a "constructor" without prototype, names in values', () => {
    const json = createJsonSerializer();
    for (const payload of [
      { constructor: 'Ada' },
      { constructor: { name: 'x' } },
      { note: '"__proto__": is just text' },
      ['__proto__', 'constructor'],
      Object.create(null),
    ]) {
      const body = json.serialize(payload, 'fk.Ok');
      expect(json.deserialize(body, 'fk.Ok')).toEqual(payload);
    }
  });

  it('refuses what toJSON produces too, and other failures stay SerializationError', async () => {
    const json = createJsonSerializer();
    const sneaky = { toJSON: () => polluted() };
    expect(() => json.serialize(sneaky, 'fk.Sneaky')).toThrow(ForbiddenKeyError);
    const client = w.endpoint({ name: 'FkBigInt', sendOnly: true });
    await client.start();
    await expect(client.send(Ping, { n: 10n } as never, { to: 'Nowhere' })).rejects.toBeInstanceOf(
      SerializationError,
    );
  });
});
