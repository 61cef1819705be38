import { defineConfig, mergeConfig } from 'vitest/config';
import { sharedConfig } from '../../vitest.shared.ts';

// One file at a time: the broker-restart test stops the whole broker.
export default mergeConfig(sharedConfig, defineConfig({ test: { fileParallelism: false } }));
