import { describe, expect, it } from 'vitest';
import { Headers } from '../src/index.ts';
import { copyEntries, PACKED_HEADERS, packHeaders, unpackHeaders } from '../src/transport/index.ts';

const sent = {
  [Headers.MessageId]: 'm-1',
  [Headers.CorrelationId]: 'm-1',
  [Headers.ConversationId]: 'c-9',
  [Headers.MessageType]: 'sales.PlaceOrder',
  [Headers.Intent]: 'send',
  'x-tenant': 'acme',
};

describe('packed bus headers', () => {
  it('packs bus headers without their prefix, leaves user headers and native ones out', () => {
    const { packed, other } = packHeaders(sent, new Set([Headers.MessageType]));
    expect(other).toEqual({ 'x-tenant': 'acme' });
    // The correlation id equals the message id: left out, restored on receipt.
    expect(JSON.parse(packed ?? '')).toEqual({
      'message-id': 'm-1',
      'conversation-id': 'c-9',
      intent: 'send',
    });
  });

  it('round-trips every bus header, restoring ids equal to the message id', () => {
    const { packed, other } = packHeaders(sent, new Set());
    const received: Record<string, string> = { ...other };
    expect(unpackHeaders(packed, received)).toBeUndefined();
    expect(received).toEqual(sent);
  });

  it('a header that arrived as its own entry wins over the packed one', () => {
    const received: Record<string, string> = { [Headers.MessageType]: 'own' };
    unpackHeaders(JSON.stringify({ 'message-type': 'packed', 'message-id': 'm' }), received);
    expect(received[Headers.MessageType]).toBe('own');
    expect(received[Headers.MessageId]).toBe('m');
  });

  it('no packed entry: nothing is added, not even derived ids', () => {
    const received: Record<string, string> = { [Headers.MessageId]: 'm' };
    expect(unpackHeaders(undefined, received)).toBeUndefined();
    expect(received).toEqual({ [Headers.MessageId]: 'm' });
  });

  it.each([
    ['{"message-id":', 'is not valid JSON'],
    ['["a"]', 'must be a JSON object of strings'],
    ['null', 'must be a JSON object of strings'],
    ['{"message-id":{"nested":1}}', "non-string value for 'message-id'"],
  ])('refuses %s with a reason naming the entry', (value, reason) => {
    const received: Record<string, string> = {};
    const why = unpackHeaders(value, received);
    expect(why).toContain(PACKED_HEADERS);
    expect(why).toContain(reason);
  });

  it('a __proto__ key cannot reach a prototype', () => {
    const received: Record<string, string> = {};
    unpackHeaders('{"__proto__":"x","message-type":"t"}', received);
    expect(Object.getPrototypeOf(received)).toBe(Object.prototype);
    expect(received['tidings.__proto__']).toBe('x');
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

describe('packed bus headers, values that need escaping', () => {
  it.each([
    ['quotes and backslashes', 'say "hi" \\ bye'],
    ['line breaks and tabs', 'line 1\n\tline 2\r\n'],
    ['control characters', '\u0000\u001f\u007f'],
    ['non-ASCII', 'Grüße, 東京 🚀'],
    ['lone surrogates', '\ud800x\udc00'],
    ['empty', ''],
  ])('%s round-trip unchanged', (_what, value) => {
    const headers = { [Headers.MessageId]: 'm', [Headers.ExceptionMessage]: value };
    const { packed, other } = packHeaders(headers, new Set());
    expect(() => JSON.parse(packed ?? '')).not.toThrow();
    const received: Record<string, string> = { ...other };
    expect(unpackHeaders(packed, received)).toBeUndefined();
    expect(received[Headers.ExceptionMessage]).toBe(value);
  });

  it('copyEntries keeps the entries as they came and sets the changes as entries of their own', () => {
    const entries = {
      [PACKED_HEADERS]: '{"message-type":',
      'x-count': 3,
      [Headers.FailedQueue]: 'A',
    };
    const from = { [Headers.MessageId]: 'm-1', 'x-count': '3', [Headers.FailedQueue]: 'A' };
    const to = { [Headers.MessageId]: 'm-1', 'x-count': '3', [Headers.Returns]: '1' };
    expect(copyEntries(entries, from, to, new Set([Headers.MessageId]))).toEqual({
      [PACKED_HEADERS]: '{"message-type":',
      'x-count': 3,
      [Headers.Returns]: '1',
    });
  });

  it('copyEntries gives up where a header to drop or change is packed or native', () => {
    const entries = { [PACKED_HEADERS]: '{"delayed-retries":"2"}' };
    const from = { [Headers.MessageId]: 'm-1', [Headers.DelayedRetries]: '2' };
    const native = new Set([Headers.MessageId]);
    expect(copyEntries(entries, from, { [Headers.MessageId]: 'm-1' }, native)).toBeUndefined();
    expect(
      copyEntries(entries, from, { ...from, [Headers.MessageId]: 'm-2' }, native),
    ).toBeUndefined();
    expect(copyEntries(entries, from, { ...from, [PACKED_HEADERS]: '{}' })).toBeUndefined();
    expect(copyEntries({ __proto__: 'x' } as Record<string, string>, {}, {})).toEqual({});
  });
});

describe('reading a packed entry', () => {
  /** What a packed entry means, read with JSON.parse: the reference for the fast reader. */
  function reference(packed: string, held: Record<string, string>) {
    const headers = { ...held };
    let parsed: unknown;
    try {
      parsed = JSON.parse(packed);
    } catch {
      return { unreadable: true };
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return { unreadable: true };
    }
    for (const [key, value] of Object.entries(parsed)) {
      if (typeof value !== 'string') return { unreadable: true };
      headers[`tidings.${key}`] ??= value;
    }
    const messageId = headers[Headers.MessageId];
    if (messageId !== undefined) {
      headers[Headers.CorrelationId] ??= messageId;
      headers[Headers.ConversationId] ??= messageId;
    }
    return { headers };
  }

  it('reads every form as JSON.parse does: plain, escaped, spaced, duplicated, malformed', () => {
    const held = { [Headers.MessageId]: 'm-1', [Headers.Intent]: 'from-a-property' };
    const packed = packHeaders(
      {
        [Headers.MessageId]: 'm-1',
        [Headers.Intent]: 'reply',
        [Headers.TimeSent]: '2026-12-07T13:44:17.601Z',
        [Headers.OriginatingInstance]: 'd970bd42',
        'x-user': 'not packed',
      },
      new Set([Headers.MessageId]),
    ).packed as string;
    const inputs = [
      packed,
      '{}',
      '{"intent":"send"}',
      '{"a":"1","a":"2"}',
      '{"a":"1","b":"x","a":"3"}',
      '{"a":"x,y:}{"}',
      '{"a:b":"c"}',
      '{"a":"é ü 中","b":"\ud800"}',
      '{"a":"tab\\there","b":"quote\\"d"}',
      '{ "a" : "spaced" }',
      '{"a":"raw\u0001control"}',
      '{"a":1}',
      '{"a":"b",}',
      '{"a":"b""c":"d"}',
      '{"a":"b"}x',
      '{"a":"b"',
      '{',
      '[]',
      '"text"',
      '{"__proto__":"p","constructor":"c"}',
      '',
    ];
    for (const input of inputs) {
      const headers: Record<string, string> = { ...held };
      const reason = unpackHeaders(input, headers);
      const expected = reference(input, held);
      if (expected.unreadable) {
        expect(reason, input).toBeTypeOf('string');
      } else {
        expect(reason, input).toBeUndefined();
        expect(headers, input).toEqual(expected.headers);
      }
    }
  });
});
