import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createEndpoint, defineMessage, type Endpoint, Headers, silentLogger } from '@tidings/core';
import { PACKED_HEADERS, packHeaders } from '@tidings/core/transport';
import { type KafkaMockCluster, startKafkaMockCluster } from '@tidings/kafka-mock-cluster';
import { createKafkaTransport, type KafkaTransport } from '@tidings/transport-kafka';
import { type Consumer, Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import {
  type BenchRow,
  type BenchSuite,
  cpuNote,
  medianOfRounds,
  rowFor,
  runConcurrent,
  waitFor,
} from '../report.js';

/**
 * Kafka on librdkafka's mock cluster (started here through kcat), or on KAFKA_BROKERS. The mock
 * answers a fetch only when its wait is over and keeps everything in one process: its figures
 * compare Tidings with raw kafkajs in the same run; they are no reference for a real cluster.
 */
const transportName = 'kafka (mock cluster)';
const oneWayCount = 20_000;
const requestsAtOne = 300;
const requestsAtHundred = 3_000;
/** The same fetch settings for both: the mock makes every hop wait this long at most. */
const maxWaitTimeInMs = 10;

const Order = defineMessage<{ id: number; sku: string }>('bench.Order');
const Ack = defineMessage<{ id: number }>('bench.Ack');
/** Requests use their own type, so telling them from one-way sends needs no extra header. */
const Quote = defineMessage<{ id: number; sku: string }>('bench.Quote');

let brokers: string[] = [];
let mock: KafkaMockCluster | undefined;

async function startCluster(): Promise<void> {
  if (process.env.KAFKA_BROKERS) {
    brokers = process.env.KAFKA_BROKERS.split(',');
    return;
  }
  mock = await startKafkaMockCluster();
  brokers = mock.brokers;
}

async function stopCluster(): Promise<void> {
  await mock?.stop();
  mock = undefined;
}

const runId = () => `bench${randomBytes(3).toString('hex')}`;

const row = rowFor(transportName);
/** The clients, Tidings and kafkajs run in this process; the mock cluster in its own. */
const cpu = (start: NodeJS.CpuUsage, messages: number) => ({
  note: cpuNote(start, messages, 'client+server'),
});

// Tidings

/**
 * `sendOnly`: the client only sends (one-way), as the raw side's producer does, so it runs no
 * consumers of its own.
 */
async function tidingsEndpoints(sendOnly = false): Promise<{
  server: Endpoint;
  client: Endpoint;
  handled: () => number;
  close: () => Promise<void>;
}> {
  const id = runId();
  const transports: KafkaTransport[] = [];
  const transport = () => {
    const made = createKafkaTransport({ brokers, clientId: 'bench', maxWaitTimeInMs });
    transports.push(made);
    return made;
  };
  let handled = 0;
  const server = createEndpoint({
    name: `${id}-Server`,
    transport: transport(),
    logger: silentLogger,
    concurrency: 128,
  });
  server.handle(Order, () => {
    handled++;
  });
  server.handle(Quote, async (quote, ctx) => {
    handled++;
    await ctx.reply(Ack, { id: quote.id });
  });
  const client = createEndpoint({
    name: `${id}-Client`,
    ...(sendOnly ? { sendOnly } : { instanceId: 'c1' }),
    transport: transport(),
    logger: silentLogger,
    routes: { [Order.name]: `${id}-Server`, [Quote.name]: `${id}-Server` },
    maxPendingRequests: 10_000,
    concurrency: 128,
  });
  await server.start();
  await client.start();
  // Warm up: the groups joined and every partition's leader known before measuring.
  if (sendOnly) {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.send(Order, { id: -i, sku: 'warm' })),
    );
    await waitFor(() => handled >= 20);
  } else {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        client.request(Quote, { id: -i, sku: 'warm' }, { expect: Ack }),
      ),
    );
  }
  handled = 0;
  return {
    server,
    client,
    handled: () => handled,
    close: async () => {
      await client.stop();
      await server.stop();
      await Promise.all(transports.map((t) => t.close()));
    },
  };
}

async function tidingsOneWay(): Promise<BenchRow> {
  const { client, handled, close } = await tidingsEndpoints(true);
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < oneWayCount; i += 1000) {
    const sends: Promise<void>[] = [];
    for (let j = i; j < i + 1000; j++) sends.push(client.send(Order, { id: j, sku: 'sku-1' }));
    await Promise.all(sends);
  }
  await waitFor(() => handled() >= oneWayCount);
  const elapsed = performance.now() - started;
  const used = cpu(cpuStart, oneWayCount);
  await close();
  return { ...row('one-way', 'tidings', oneWayCount, elapsed), ...used };
}

async function tidingsRequestReply(concurrency: number, total: number): Promise<BenchRow> {
  const { client, close } = await tidingsEndpoints();
  const options = { expect: Ack } as const;
  const cpuStart = process.cpuUsage();
  const { elapsedMs, latenciesMs } = await runConcurrent(total, concurrency, async (id) => {
    await client.request(Quote, { id, sku: 'sku-1' }, options);
  });
  const used = cpu(cpuStart, total);
  await close();
  return {
    ...row(`request/reply c=${concurrency}`, 'tidings', total, elapsedMs, latenciesMs),
    ...used,
  };
}

// Raw kafkajs: the same work written directly, with the same fetch settings.

interface Raw {
  kafka: Kafka;
  producer: Producer;
  consumers: Consumer[];
}

async function raw(): Promise<Raw> {
  const kafka = new Kafka({ clientId: 'bench-raw', brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  return { kafka, producer, consumers: [] };
}

async function rawConsumer(
  r: Raw,
  groupId: string,
  topic: string,
  onMessage: (value: Buffer, headers: Record<string, string>) => Promise<void> | void,
): Promise<void> {
  const consumer = r.kafka.consumer({ groupId, maxWaitTimeInMs });
  r.consumers.push(consumer);
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) {
        if (v !== undefined) headers[k] = v.toString();
      }
      await onMessage(message.value ?? Buffer.alloc(0), headers);
    },
  });
}

async function closeRaw(r: Raw): Promise<void> {
  await Promise.all(r.consumers.map((c) => c.disconnect()));
  await r.producer.disconnect();
}

async function ensureTopics(r: Raw, topics: string[]): Promise<void> {
  const admin = r.kafka.admin();
  await admin.connect();
  // The mock cannot create topics through the admin API; a metadata request auto-creates them.
  await admin.fetchTopicMetadata({ topics });
  await admin.disconnect();
}

/**
 * Ten record headers shaped like bus headers, for a context row: what carrying them one record
 * header each costs kafkajs, the reason Tidings packs them into one (ADR 8).
 */
function busLikeHeaders(id: string): Record<string, string> {
  return {
    'tidings.message-id': id,
    'tidings.correlation-id': id,
    'tidings.conversation-id': id,
    'tidings.message-type': 'bench.Order',
    'tidings.content-type': 'application/json',
    'tidings.time-sent': new Date().toISOString(),
    'tidings.intent': 'send',
    'tidings.reply-to': 'bench-client',
    'tidings.originating-endpoint': 'bench-client',
    'tidings.originating-instance': 'c1',
  };
}

/**
 * The one record header Tidings sends with a one-way message, built by core's own packing from the
 * headers a send-only endpoint sets: what carrying the bus headers at all costs kafkajs, with no
 * Tidings code running. Tidings' ratio cannot beat this row's.
 */
function packedBusHeader(id: string, endpoint: string): Record<string, string> {
  const { packed } = packHeaders(
    {
      [Headers.MessageId]: id,
      [Headers.CorrelationId]: id,
      [Headers.ConversationId]: id,
      [Headers.Intent]: 'send',
      [Headers.TimeSent]: new Date().toISOString(),
      [Headers.OriginatingEndpoint]: endpoint,
      [Headers.MessageType]: Order.name,
      [Headers.ContentType]: 'application/json',
    },
    new Set(),
  );
  return { [PACKED_HEADERS]: packed as string };
}

type RawHeaders = 'none' | 'small' | 'packed' | 'ten';

/**
 * One record header of 32 bytes (name and value), for a context row: beside the packed header's
 * row (about 230 bytes), it shows what kafkajs spends on having a header at all.
 */
const smallHeader: Record<string, string> = { 'tidings.headers': '{"intent":"send"}' };

const rawOneWayImpl: Record<RawHeaders, string> = {
  none: 'raw kafkajs',
  small: 'raw kafkajs + one 32-byte header',
  packed: "raw kafkajs + Tidings' packed header",
  ten: 'raw kafkajs + 10 record headers',
};

async function rawOneWay(withHeaders: RawHeaders): Promise<BenchRow> {
  const r = await raw();
  const topic = `${runId()}-raw-oneway`;
  await ensureTopics(r, [topic]);
  /** Named as Tidings names the client endpoint. */
  const client = `${runId()}-Client`;
  let handled = 0;
  await rawConsumer(r, topic, topic, (value) => {
    JSON.parse(value.toString('utf8'));
    handled++;
  });
  await r.producer.send({ topic, acks: -1, messages: [{ key: 'warm', value: '{"id":-1}' }] });
  await waitFor(() => handled >= 1);
  handled = 0;
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < oneWayCount; i += 1000) {
    const messages = [];
    for (let j = i; j < i + 1000; j++) {
      const key = `${topic}-${j}`;
      messages.push({
        key,
        value: JSON.stringify({ id: j, sku: 'sku-1' }),
        ...(withHeaders === 'small' ? { headers: smallHeader } : {}),
        ...(withHeaders === 'ten' ? { headers: busLikeHeaders(key) } : {}),
        ...(withHeaders === 'packed' ? { headers: packedBusHeader(randomUUID(), client) } : {}),
      });
    }
    await r.producer.send({ topic, acks: -1, messages });
  }
  await waitFor(() => handled >= oneWayCount);
  const elapsed = performance.now() - started;
  const used = cpu(cpuStart, oneWayCount);
  await closeRaw(r);
  return {
    ...row('one-way', rawOneWayImpl[withHeaders], oneWayCount, elapsed),
    ...used,
  };
}

async function rawRequestReply(concurrency: number, total: number): Promise<BenchRow> {
  const r = await raw();
  const id = runId();
  const requests = `${id}-raw-requests`;
  const replies = `${id}-raw-replies-c1`;
  await ensureTopics(r, [requests, replies]);
  // Server: one produce per reply, to the reply topic named in the request.
  await rawConsumer(r, requests, requests, async (value, headers) => {
    const request = JSON.parse(value.toString('utf8')) as { id: number };
    await r.producer.send({
      topic: headers['reply-to'] as string,
      acks: -1,
      messages: [
        {
          key: headers['correlation-id'] as string,
          value: JSON.stringify({ id: request.id }),
          headers: { 'correlation-id': headers['correlation-id'] as string },
        },
      ],
    });
  });
  // Client: a reply topic per instance, read by a group of one.
  const pending = new Map<string, () => void>();
  await rawConsumer(r, replies, replies, (value, headers) => {
    JSON.parse(value.toString('utf8'));
    const cid = headers['correlation-id'] as string;
    pending.get(cid)?.();
    pending.delete(cid);
  });
  const ask = (n: number) =>
    new Promise<void>((resolve, reject) => {
      const cid = `${id}-${n}`;
      pending.set(cid, resolve);
      r.producer
        .send({
          topic: requests,
          acks: -1,
          messages: [
            {
              key: cid,
              value: JSON.stringify({ id: n, sku: 'sku-1' }),
              headers: { 'reply-to': replies, 'correlation-id': cid },
            },
          ],
        })
        .catch(reject);
    });
  await Promise.all(Array.from({ length: 20 }, (_, i) => ask(-1 - i)));
  const cpuStart = process.cpuUsage();
  const { elapsedMs, latenciesMs } = await runConcurrent(total, concurrency, ask);
  const used = cpu(cpuStart, total);
  await closeRaw(r);
  return {
    ...row(`request/reply c=${concurrency}`, 'raw kafkajs', total, elapsedMs, latenciesMs),
    ...used,
  };
}

export const kafkaSuite: BenchSuite = {
  name: 'kafka',
  async unavailable() {
    if (process.env.KAFKA_BROKERS) return undefined;
    const probe = spawnSync('kcat', ['-V'], { stdio: 'ignore' });
    return probe.error
      ? 'kcat is not installed (apt-get install kcat), and KAFKA_BROKERS is not set'
      : undefined;
  },
  async run() {
    await startCluster();
    try {
      const rows = await medianOfRounds(3, async () => [
        await rawOneWay('none'),
        await rawOneWay('small'),
        await rawOneWay('packed'),
        await rawOneWay('ten'),
        await tidingsOneWay(),
        await rawRequestReply(1, requestsAtOne),
        await tidingsRequestReply(1, requestsAtOne),
        await rawRequestReply(100, requestsAtHundred),
        await tidingsRequestReply(100, requestsAtHundred),
      ]);
      return rows.map((r) => ({
        ...r,
        note: mock
          ? `${r.note ?? ''}; mock cluster: compare the ratio, not the figures`
          : (r.note ?? ''),
      }));
    } finally {
      await stopCluster();
    }
  },
};
