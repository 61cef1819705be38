import { randomBytes } from 'node:crypto';
import type { Endpoint } from '@tidings/core';
import { deleteTopology } from './broker.ts';

/** A unique name prefix per test, so runs never meet each other's leftovers. */
export function uniquePrefix(label: string): string {
  return `rmq-${label}-${randomBytes(4).toString('hex')}`;
}

/** Stops endpoints and deletes every queue they declared. */
export async function disposeEndpoints(endpoints: Endpoint[], extraQueues: string[] = []) {
  await Promise.allSettled(endpoints.map((endpoint) => endpoint.stop()));
  const queues = new Set(extraQueues);
  for (const endpoint of endpoints) {
    if (endpoint.inputQueue) queues.add(endpoint.inputQueue);
    if (endpoint.instanceQueue) queues.add(endpoint.instanceQueue);
  }
  await deleteTopology([...queues]);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `task` for 0..total-1 with at most `concurrency` at once. */
export async function pool(
  total: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) await task(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
