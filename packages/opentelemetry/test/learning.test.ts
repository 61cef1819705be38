import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLearningTransport } from '@tidings/transport-learning';
import { describeTracing } from './describe-tracing.ts';
import { registerTestSdk } from './sdk.ts';

const sdk = registerTestSdk();
// Every transport of one test shares that test's directory, as processes on one machine would.
const rootDirs = new Map<string, string>();

describeTracing(sdk, {
  name: 'learning',
  system: 'tidings.learning',
  makeTransport: (scope) => {
    let dir = rootDirs.get(scope.id);
    if (dir === undefined) {
      dir = mkdtempSync(join(tmpdir(), `tidings-otel-${scope.id}-`));
      rootDirs.set(scope.id, dir);
    }
    return createLearningTransport({ rootDir: dir });
  },
  cleanup: async (scope) => {
    const dir = rootDirs.get(scope.id);
    rootDirs.delete(scope.id);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  },
});
