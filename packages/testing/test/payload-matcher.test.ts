import { describe, expect, it } from 'vitest';
import { describePayload, matchesPayload } from '../src/payload-matcher.ts';

describe('payload matchers', () => {
  const order = {
    id: 'a',
    lines: [{ sku: 'x', qty: 1 }],
    customer: { tier: 'gold', address: { city: 'Oslo' } },
    at: new Date('2026-01-01T00:00:00Z'),
  };

  it('a partial object matches when every given property equals, nested objects partially', () => {
    expect(matchesPayload({}, order)).toBe(true);
    expect(matchesPayload({ id: 'a' }, order)).toBe(true);
    expect(matchesPayload({ customer: { address: { city: 'Oslo' } } }, order)).toBe(true);
    expect(matchesPayload({ customer: { tier: 'silver' } }, order)).toBe(false);
    expect(matchesPayload({ id: 'a', customer: { tier: 'silver' } }, order)).toBe(false);
  });

  it('arrays and other values must be deeply equal', () => {
    expect(matchesPayload({ lines: [{ sku: 'x', qty: 1 }] }, order)).toBe(true);
    expect(matchesPayload({ lines: [{ sku: 'x' }] } as never, order)).toBe(false);
    expect(matchesPayload({ at: new Date('2026-01-01T00:00:00Z') }, order)).toBe(true);
    expect(matchesPayload({ at: new Date('2027-01-01T00:00:00Z') }, order)).toBe(false);
  });

  it('a property the payload lacks does not match, even when the matcher says undefined', () => {
    expect(matchesPayload({ note: undefined } as never, order)).toBe(false);
    expect(matchesPayload({ id: 'a' }, null as never)).toBe(false);
  });

  it('a predicate decides alone', () => {
    expect(matchesPayload((o: typeof order) => o.lines.length === 1, order)).toBe(true);
    expect(matchesPayload((o: typeof order) => o.id === 'b', order)).toBe(false);
  });

  it('payloads read as JSON in messages, cut short', () => {
    expect(describePayload({ a: 1 })).toBe('{"a":1}');
    expect(describePayload(undefined)).toBe('undefined');
    expect(describePayload({ s: 'x'.repeat(500) })).toHaveLength(301);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(describePayload(cyclic)).toBe('[object Object]');
  });
});
