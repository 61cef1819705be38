import { randomUUID } from 'node:crypto';
import { Headers } from '@tidings/core';
import { describeTransport } from '@tidings/transport-tests';
import { Kafka, logLevel } from 'kafkajs';
import { createKafkaTransport, type KafkaTransport } from '../src/index.ts';
import { brokers, testOptions } from './kafka-test-options.ts';

const raw = () => new Kafka({ clientId: 'raw', brokers: brokers(), logLevel: logLevel.NOTHING });
// Short, as the transport's own in these tests: the mock cluster holds a join that long.
const groupTimeouts = { sessionTimeout: 6_000, rebalanceTimeout: 6_000, heartbeatInterval: 300 };

const made = new Map<string, KafkaTransport[]>();

describeTransport({
  name: 'kafka',
  makeTransport: (scope) => {
    const transport = createKafkaTransport(testOptions({ maxMessageSizeBytes: 64 * 1024 }));
    made.set(scope.id, [...(made.get(scope.id) ?? []), transport]);
    return transport;
  },
  capabilities: {
    delayedDelivery: false,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: 64 * 1024,
    deliveryCount: false,
    durable: true,
    partitionedQueues: true,
  },
  packed: {
    // As kcat or another client would: the record headers as given.
    send: async (_scope, queue, entries, body) => {
      const producer = raw().producer({ allowAutoTopicCreation: false });
      await producer.connect();
      try {
        await producer.send({
          topic: queue,
          acks: -1,
          messages: [{ key: 'raw', value: Buffer.from(body), headers: { ...entries } }],
        });
      } finally {
        await producer.disconnect();
      }
    },
    // As a console consumer would: the topic from its start, in a group of its own.
    peek: async (_scope, queue, messageId) => {
      const kafka = raw();
      const admin = kafka.admin();
      await admin.connect();
      let ends: Array<{ partition: number; offset: string }>;
      try {
        ends = await admin.fetchTopicOffsets(queue);
      } finally {
        await admin.disconnect();
      }
      const left = new Map(
        ends.filter((e) => e.offset !== '0').map((e) => [e.partition, BigInt(e.offset)]),
      );
      if (left.size === 0) return undefined;
      const consumer = kafka.consumer({ groupId: `peek-${randomUUID()}`, ...groupTimeouts });
      let found: Record<string, string> | undefined;
      // The latest across partitions is the one produced last: records of one message id can sit
      // in different partitions (a return is keyed as any send), read in no particular order.
      let foundAt = -1n;
      await consumer.connect();
      try {
        await consumer.subscribe({ topic: queue, fromBeginning: true });
        await new Promise<void>((resolve) => {
          void consumer.run({
            eachMessage: async ({ partition, message }) => {
              const text: Record<string, string> = {};
              for (const [name, value] of Object.entries(message.headers ?? {})) {
                if (value !== undefined) text[name] = String(value);
              }
              const producedAt = BigInt(message.timestamp);
              if (text[Headers.MessageId] === messageId && producedAt >= foundAt) {
                found = text;
                foundAt = producedAt;
              }
              if (BigInt(message.offset) + 1n >= (left.get(partition) ?? 0n))
                left.delete(partition);
              if (left.size === 0) resolve();
            },
          });
        });
      } finally {
        await consumer.disconnect();
      }
      return found;
    },
  },
  cleanup: async (scope) => {
    await Promise.allSettled((made.get(scope.id) ?? []).map((t) => t.close()));
    made.delete(scope.id);
  },
});
