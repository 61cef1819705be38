import { PersistenceError } from '@tidings/core';
import { describe, expect, it } from 'vitest';
import { toPersistenceError } from '../src/index.ts';

const serverError = (code: string, message = 'boom') =>
  Object.assign(new Error(message), { code, severity: 'ERROR' });

describe('toPersistenceError', () => {
  it('keeps a server error text and SQLSTATE; retryable for lost connections and races', () => {
    const terminated = toPersistenceError(
      serverError('57P01', 'terminating connection due to administrator command'),
      'commit',
    );
    expect(terminated).toBeInstanceOf(PersistenceError);
    expect(terminated).toMatchObject({ code: 'TIDINGS_PERSISTENCE', isRetryable: true });
    expect(terminated.message).toMatch(/SQLSTATE 57P01/);
    expect(toPersistenceError(serverError('40001'), 'commit').isRetryable).toBe(true);
    expect(toPersistenceError(serverError('08006'), 'commit').isRetryable).toBe(true);
    expect(toPersistenceError(serverError('23505'), 'store').isRetryable).toBe(false);
    expect(toPersistenceError(serverError('42P01'), 'store').isRetryable).toBe(false);
  });

  it('says an unreachable server cannot be reached, without its address', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.1.2.3:5432'), {
      code: 'ECONNREFUSED',
    });
    const error = toPersistenceError(refused, 'connect');
    expect(error).toMatchObject({ isRetryable: true });
    expect(error.message).not.toContain('10.1.2.3');
    expect(error.cause).toBe(refused);
  });

  it('takes a terminated client as retryable, and passes a PersistenceError through', () => {
    expect(
      toPersistenceError(new Error('Connection terminated unexpectedly'), 'claim').isRetryable,
    ).toBe(true);
    const original = new PersistenceError('x');
    expect(toPersistenceError(original, 'claim')).toBe(original);
  });
});
