import {
  type KafkaMockCluster,
  startKafkaMockCluster,
} from '@tidings/transport-tests/kafka-mock-cluster';
import type { TestProject } from 'vitest/node';

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
