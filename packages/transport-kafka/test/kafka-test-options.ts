import { inject } from 'vitest';
import type { KafkaTransportOptions } from '../src/index.ts';

/** Brokers from the global setup: the mock cluster, or KAFKA_BROKERS. */
export const brokers = (): string[] => inject('kafkaBrokers').split(',');

/**
 * Settings for tests: short fetch waits (the mock answers a fetch only when its wait is over) and
 * short group timeouts (the mock holds a rebalance for the session timeout less a second).
 */
export const testOptions = (
  overrides: Partial<KafkaTransportOptions> = {},
): KafkaTransportOptions => ({
  brokers: brokers(),
  clientId: 'tidings-tests',
  maxWaitTimeInMs: 10,
  sessionTimeoutMs: 3_000,
  instanceSessionTimeoutMs: 3_000,
  rebalanceTimeoutMs: 6_000,
  heartbeatIntervalMs: 300,
  retries: 10,
  ...overrides,
});
