import { afterEach, describe, expect, it } from 'vitest';
import { CallbackRegistry, PendingRequest } from '../src/callbacks/callback-registry.ts';
import { defineMessage, RequestAbortedError } from '../src/index.ts';
import { world } from './helpers.ts';

const Job = defineMessage<{ n: number }>('abort.Job');

function pendingEntry(failures: unknown[]) {
  return new PendingRequest(
    Job.name,
    'any',
    () => {},
    undefined,
    () => {},
    (error) => failures.push(error),
  ) as unknown as PendingRequest;
}

describe('many requests sharing one AbortSignal', () => {
  let w = world();
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  afterEach(async () => {
    process.off('warning', onWarning);
    warnings.length = 0;
    await w.stopAll();
    w = world();
  });

  it('add one listener to the signal: no MaxListenersExceededWarning, and abort rejects them all', async () => {
    process.on('warning', onWarning);
    const server = w.endpoint({ name: 'AbortSharedServer' });
    server.handle(Job, () => {}); // never replies
    // Fewer slots than requests: some wait for a slot, on the same signal.
    const client = w.endpoint({ name: 'AbortSharedClient', maxPendingRequests: 200 });
    await server.start();
    await client.start();
    const abort = new AbortController();
    const requests = Array.from({ length: 500 }, (_, n) =>
      client.request(Job, { n }, { to: 'AbortSharedServer', signal: abort.signal }),
    );
    await expect.poll(() => client.stats.pendingRequests).toBe(200);
    expect(client.stats.waitingRequests).toBe(300);
    abort.abort(new Error('user left'));
    const outcomes = await Promise.allSettled(requests);
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    expect(
      outcomes.every((o) => o.status === 'rejected' && o.reason instanceof RequestAbortedError),
    ).toBe(true);
    expect(client.stats.pendingRequests).toBe(0);
    expect(client.stats.waitingRequests).toBe(0);
    // Warnings are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('the registry keeps one listener per signal and drops it with the last request', () => {
    const registry = new CallbackRegistry(1000);
    const abort = new AbortController();
    const failures: unknown[] = [];
    for (let i = 0; i < 100; i++) {
      registry.acquire(Job.name);
      registry.register(`id-${i}`, pendingEntry(failures), {
        timeoutMs: 60_000,
        signal: abort.signal,
      });
    }
    expect(registry.abortSignals).toBe(1);
    for (let i = 0; i < 50; i++) registry.remove(`id-${i}`);
    expect(registry.abortSignals).toBe(1);
    abort.abort();
    expect(failures).toHaveLength(50);
    expect(registry.size).toBe(0);
    expect(registry.abortSignals).toBe(0);

    const other = new AbortController();
    registry.acquire(Job.name);
    registry.register('last', pendingEntry(failures), { timeoutMs: 60_000, signal: other.signal });
    registry.remove('last');
    expect(registry.abortSignals).toBe(0);
  });
});
