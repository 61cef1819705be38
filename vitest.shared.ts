import { defineConfig } from 'vitest/config';

/** Shared by every package: resolve workspace packages to their TypeScript sources. */
export const sharedConfig = defineConfig({
  resolve: { conditions: ['@tidings/source'] },
  ssr: { resolve: { conditions: ['@tidings/source'] } },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default'],
  },
});
