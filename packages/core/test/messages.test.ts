import { type } from 'arktype';
import * as v from 'valibot';
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { z } from 'zod';
import { buildOperation } from '../src/endpoint/outgoing.ts';
import {
  ConfigurationError,
  createJsonSerializer,
  DeserializationError,
  defineMessage,
  Headers,
  type PayloadOf,
} from '../src/index.ts';
import type { TransportOperation } from '../src/transport/transport.ts';
import { readQueue, world } from './helpers.ts';

describe('defineMessage', () => {
  it('types the payload from a type argument or from a schema', () => {
    const Plain = defineMessage<{ id: string }>('t.Plain');
    const WithZod = defineMessage('t.Zod', z.object({ id: z.string(), n: z.number() }));
    expectTypeOf<PayloadOf<typeof Plain>>().toEqualTypeOf<{ id: string }>();
    expectTypeOf<PayloadOf<typeof WithZod>>().toEqualTypeOf<{ id: string; n: number }>();
    expect(Plain).toEqual({ name: 't.Plain', schema: undefined });
    expect(Object.isFrozen(WithZod)).toBe(true);
  });

  it('rejects bad names and non-Standard-Schema schemas with ConfigurationError', () => {
    expect(() => defineMessage('')).toThrow(ConfigurationError);
    expect(() => defineMessage('has space')).toThrow(/Invalid message name/);
    expect(() => defineMessage('t.X', {} as never)).toThrow(/not a Standard Schema/);
  });

  describe.each([
    ['zod', z.object({ id: z.string(), amount: z.number().positive() })],
    ['valibot', v.object({ id: v.string(), amount: v.pipe(v.number(), v.minValue(1)) })],
    ['arktype', type({ id: 'string', amount: 'number > 0' })],
  ])('validates incoming payloads at runtime with %s', (library, schema) => {
    const w = world();
    afterEach(() => w.stopAll());

    it('handles a valid payload and sends an invalid one to the error queue with TIDINGS_VALIDATION', async () => {
      const Order = defineMessage(`t.Order.${library}`, schema);
      const handled: unknown[] = [];
      const server = w.endpoint({ name: `V-${library}` });
      server.handle(Order, (order) => void handled.push(order));
      await server.start();
      const errors = await readQueue(w.transport, 'error');
      const failed: Array<Readonly<Record<string, string>>> = [];
      const client = w.endpoint({ name: `C-${library}`, sendOnly: true });
      await client.start();
      await client.send(Order, { id: 'a', amount: 5 }, { to: `V-${library}` });
      await client.send(Order, { id: 'b', amount: -1 } as never, { to: `V-${library}` });
      await expect.poll(() => handled.length + errors.messages.length).toBe(2);
      expect(handled).toEqual([{ id: 'a', amount: 5 }]);
      failed.push(...errors.messages.map((m) => m.headers));
      expect(failed[0]?.[Headers.ExceptionCode]).toBe('TIDINGS_VALIDATION');
      expect(failed[0]?.[Headers.ExceptionMessage]).toMatch(/amount/);
      expect(server.stats.immediateRetries).toBe(0);
    });
  });
});

describe('JSON serializer', () => {
  const serializer = createJsonSerializer();

  it('round-trips payloads', () => {
    const body = serializer.serialize({ a: 1, b: ['x'] });
    expect(serializer.deserialize(body, 't.X')).toEqual({ a: 1, b: ['x'] });
    expect(serializer.contentType).toBe('application/json');
  });

  it.each([
    ['malformed JSON', '{"a":'],
    ['a __proto__ key', '{"__proto__":{"polluted":true}}'],
    ['a nested __proto__ key', '{"a":{"__proto__":{"polluted":true}}}'],
    ['constructor.prototype', '{"constructor":{"prototype":{"polluted":true}}}'],
  ])('refuses %s with DeserializationError', (_what, text) => {
    expect(() => serializer.deserialize(Buffer.from(text), 't.X')).toThrow(DeserializationError);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses bytes that are not UTF-8', () => {
    expect(() => serializer.deserialize(Buffer.from([0xff, 0xfe, 0x7b]), 't.X')).toThrow(/UTF-8/);
  });
});

describe('time sent', () => {
  afterEach(() => vi.restoreAllMocks());

  it('is the ISO 8601 UTC time of the send, to the millisecond, across seconds and years', () => {
    const settings = {
      endpointName: 'Clock',
      instanceId: undefined,
      serializer: createJsonSerializer(),
      maxMessageSizeBytes: 1_000_000,
      transportName: 'test',
      middleware: [],
    };
    const now = vi.spyOn(Date, 'now');
    for (const time of [
      Date.UTC(2026, 11, 7, 13, 44, 17, 5),
      Date.UTC(2026, 11, 7, 13, 44, 17, 50),
      Date.UTC(2026, 11, 7, 13, 44, 17, 999),
      Date.UTC(2026, 11, 7, 13, 44, 18, 0),
      Date.UTC(2026, 11, 7, 13, 44, 17, 500),
      Date.UTC(1969, 11, 31, 23, 59, 59, 1),
      Date.UTC(12000, 0, 1, 0, 0, 0, 42),
    ]) {
      now.mockReturnValue(time);
      const built = buildOperation(
        {
          intent: 'send',
          messageType: 't.Clock',
          payload: {},
          destination: { kind: 'queue', queue: 'Q' },
        },
        settings,
      ) as TransportOperation;
      expect(built.message.headers[Headers.TimeSent]).toBe(new Date(time).toISOString());
    }
  });
});
