import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeTransport } from '@tidings/transport-tests';
import { createLearningTransport, MAX_DELAY_MS } from '../src/index.ts';

// Every transport of one test shares that test's directory, as processes on one machine would.
const rootDirs = new Map<string, string>();
const rootDirOf = (scopeId: string) => {
  let dir = rootDirs.get(scopeId);
  if (dir === undefined) {
    dir = mkdtempSync(join(tmpdir(), `tidings-${scopeId}-`));
    rootDirs.set(scopeId, dir);
  }
  return dir;
};

describeTransport({
  name: 'learning',
  makeTransport: (scope) =>
    createLearningTransport({ rootDir: rootDirOf(scope.id), maxMessageSizeBytes: 64 * 1024 }),
  capabilities: {
    delayedDelivery: true,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: 64 * 1024,
    deliveryCount: true,
    durable: true,
    maxDelayMs: MAX_DELAY_MS,
  },
  cleanup: async (scope) => {
    const dir = rootDirs.get(scope.id);
    rootDirs.delete(scope.id);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  },
});
