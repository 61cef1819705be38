import { defineConfig } from 'vitest/config';

/**
 * Lets `npx vitest` and `npx vitest run <path>` work from the repository root: each package and
 * app is a project with its own config (global setups such as the Kafka mock cluster included).
 * `npm test` still runs each package's own `vitest run`, one package at a time.
 */
export default defineConfig({
  test: {
    projects: ['packages/*/vitest.config.ts', 'apps/*/vitest.config.ts', 'docs/vitest.config.ts'],
  },
});
