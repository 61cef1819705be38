import { describe, expect, it } from 'vitest';
import {
  DestinationNotFoundError,
  mapNativeError,
  type NativeErrorTable,
  redactError,
  TransportError,
  TransportUnavailableError,
} from '../src/transport/index.ts';

const table: NativeErrorTable = {
  system: 'Broker',
  map: (facts, context) =>
    facts.code === 404 && context.destination !== undefined
      ? new DestinationNotFoundError(context.destination, { cause: facts.cause })
      : undefined,
};

function withCode(message: string, code: string | number): Error {
  return Object.assign(new Error(message), { code });
}

describe('mapNativeError', () => {
  it('passes a TidingsError through as it is', () => {
    const error = new TransportError('already mapped');
    expect(mapNativeError(error, { operation: 'send' }, table)).toBe(error);
  });

  it("leaves the transport's table to decide from the innermost cause", () => {
    const wrapped = Object.assign(new Error('retries exceeded'), {
      originalError: withCode('no queue', 404),
    });
    const mapped = mapNativeError(wrapped, { operation: 'send', destination: 'orders' }, table);
    expect(mapped).toBeInstanceOf(DestinationNotFoundError);
    expect(mapped.cause).toBe(wrapped);
  });

  it('maps socket codes to TransportUnavailableError and the rest to TransportError', () => {
    const down = mapNativeError(
      withCode('connect ECONNREFUSED', 'ECONNREFUSED'),
      { operation: 'connect' },
      table,
    );
    expect(down).toBeInstanceOf(TransportUnavailableError);
    expect(down.isRetryable).toBe(true);
    expect(down.message).toBe(
      'Broker: could not connect: the broker is unavailable (connect ECONNREFUSED).',
    );
    const other = mapNativeError(new Error('odd'), { operation: 'send' }, table);
    expect(other).toBeInstanceOf(TransportError);
    expect(other.isRetryable).toBe(false);
    const retrying = mapNativeError(
      new Error('odd'),
      { operation: 'send' },
      { ...table, retryableByDefault: true },
    );
    expect(retrying.isRetryable).toBe(true);
  });

  it('maps an AggregateError of attempts as its last attempt', () => {
    const mapped = mapNativeError(
      new AggregateError([new Error('first'), withCode('last', 'ECONNRESET')], ''),
      { operation: 'send' },
      table,
    );
    expect(mapped).toBeInstanceOf(TransportUnavailableError);
    expect(mapped.message).toContain('last');
  });

  it('cuts secrets out of the message and out of every cause inward, keeping name and code', () => {
    const inner = withCode('auth failed for s3cr3t-pass', 'EAUTH');
    inner.name = 'SaslError';
    const outer = new Error('retries exceeded', { cause: inner });
    const mapped = mapNativeError(outer, { operation: 'connect', secrets: ['s3cr3t-pass'] }, table);
    expect(mapped.message).toBe('Broker: could not connect: auth failed for ***');
    const cause = mapped.cause as Error & { cause: Error & { code: string } };
    expect(cause).not.toBe(outer);
    expect(cause.message).toBe('retries exceeded');
    expect(cause.cause.name).toBe('SaslError');
    expect(cause.cause.code).toBe('EAUTH');
    expect(
      JSON.stringify({ m: cause.cause.message, s: cause.cause.stack, t: cause.stack }),
    ).not.toContain('s3cr3t-pass');
  });

  it('keeps an error without secrets as its cause, unchanged', () => {
    const error = new Error('plain', { cause: new Error('inner') });
    expect(redactError(error, ['s3cr3t-pass'])).toBe(error);
  });

  it('reads thrown values that are not errors without throwing', () => {
    const hostile = {
      toString() {
        throw new Error('no');
      },
    };
    expect(mapNativeError(hostile, { operation: 'send' }, table).message).toBe(
      'Broker: could not send: an unprintable value',
    );
    const text = mapNativeError(
      'bad password s3cr3t-pass',
      { operation: 'send', secrets: ['s3cr3t-pass'] },
      table,
    );
    expect(text.message).toBe('Broker: could not send: bad password ***');
    expect(text.cause).toBe('bad password ***');
  });
});
