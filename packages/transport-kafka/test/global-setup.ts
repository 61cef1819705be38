// By path, not package name: a global setup is loaded without the workspace's source condition,
// and this one must work before anything is built (`npx vitest run` from a fresh clone).

import type { TestProject } from 'vitest/node';
import {
  type KafkaMockCluster,
  startKafkaMockCluster,
} from '../../kafka-mock-cluster/src/index.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
  }
}

let mock: KafkaMockCluster | undefined;

/** Starts librdkafka's mock cluster (through kcat) unless KAFKA_BROKERS points at a real cluster. */
export async function setup(project: TestProject): Promise<void> {
  const external = process.env.KAFKA_BROKERS;
  if (external) {
    project.provide('kafkaBrokers', external);
    return;
  }
  mock = await startKafkaMockCluster();
  project.provide('kafkaBrokers', mock.brokers.join(','));
}

export async function teardown(): Promise<void> {
  const cluster = mock;
  mock = undefined;
  await cluster?.stop();
}
