import {
  createEndpoint,
  defineMessage,
  type Endpoint,
  RequestTimeoutError,
  silentLogger,
} from '@tidings/core';
import { recordingLogger } from '@tidings/transport-tests';
import * as amqp from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import {
  type ClusterNode,
  clusterCtl,
  clusterUnavailableReason,
  clusterUrl,
  killClusterNode,
  startCluster,
  stopCluster,
} from './cluster.ts';
import { pool, sleep, uniquePrefix } from './helpers.ts';

const Work = defineMessage<{ n: number }>('rmqcluster.Work');
const Ping = defineMessage<{ n: number }>('rmqcluster.Ping');
const Pong = defineMessage<{ n: number }>('rmqcluster.Pong');

const unavailable = clusterUnavailableReason();
if (unavailable !== undefined) {
  console.warn(
    `\n*** SKIPPED: the RabbitMQ three-node cluster tests cannot run here: ${unavailable}. ***\n`,
  );
}

const urls = (...nodes: ClusterNode[]) => nodes.map(clusterUrl);

// The cluster (scripts/rabbitmq-cluster.sh) runs beside the shared broker on its own ports; it is
// started fresh for this file and stopped by node name afterwards, whatever happened.
describe.skipIf(unavailable !== undefined)('rabbitmq three-node cluster', () => {
  const endpoints: Endpoint[] = [];
  beforeAll(() => startCluster(), 200_000);
  afterAll(() => stopCluster(), 120_000);
  afterEach(async () => {
    await Promise.allSettled(endpoints.splice(0).map((endpoint) => endpoint.stop()));
  });

  it('quorum queues get the broker default of 3 replicas, or quorumInitialGroupSize', async () => {
    const prefix = uniquePrefix('cluster-replicas');
    const start = async (name: string, quorumInitialGroupSize?: number) => {
      const endpoint = createEndpoint({
        name,
        transport: createRabbitMqTransport({
          urls: urls(1, 2, 3),
          ...(quorumInitialGroupSize !== undefined ? { quorumInitialGroupSize } : {}),
        }),
        logger: silentLogger,
        recoverability: { errorQueue: `${name}-error` },
      });
      endpoint.handle(Work, async () => {});
      endpoints.push(endpoint);
      await endpoint.start();
    };
    await start(`${prefix}-Default`);
    await start(`${prefix}-Two`, 2);
    const listing = await clusterCtl(1, 'list_queues', 'name', 'members', '--no-table-headers');
    const members = (queue: string) =>
      listing
        .split('\n')
        .find((line) => line.startsWith(`${queue}\t`))
        ?.match(/t\d@localhost/g)?.length;
    expect(members(`${prefix}-Default`)).toBe(3);
    expect(members(`${prefix}-Two`)).toBe(2);
  });

  it('a stream and 500 requests at a time: a follower, the queue leader, then the connected node go', {
    timeout: 240_000,
  }, async () => {
    const prefix = uniquePrefix('cluster');
    const serverName = `${prefix}-Server`;
    const errorQueue = `${prefix}-error`;
    // The endpoint queue's leader on t2, where the server connects first; the client connects to
    // t1 and t3 is a plain follower. Requests and replies cross nodes throughout.
    const raw = await amqp.connect(clusterUrl(2));
    await (await raw.createChannel()).assertQueue(serverName, {
      durable: true,
      arguments: { 'x-queue-type': 'quorum' },
    });
    await raw.close();
    expect(await clusterCtl(2, 'list_queues', 'name', 'leader', '--no-table-headers')).toMatch(
      new RegExp(`${serverName}\\s+t2@localhost`),
    );

    const transport = (nodes: string[]) =>
      createRabbitMqTransport({
        urls: nodes,
        reconnectInitialDelayMs: 100,
        reconnectMaxDelayMs: 1_000,
        unavailableTimeoutMs: 60_000,
      });
    const handled = new Map<number, number>();
    const handledAt = new Map<number, number>();
    const serverLog = recordingLogger();
    const server = createEndpoint({
      name: serverName,
      transport: transport(urls(2, 3, 1)),
      logger: serverLog,
      concurrency: 100,
      recoverability: { errorQueue },
    });
    server.handle(Work, async ({ n }) => {
      handled.set(n, (handled.get(n) ?? 0) + 1);
      if (!handledAt.has(n)) handledAt.set(n, Date.now());
    });
    server.handle(Ping, async ({ n }, context) => {
      await sleep(200);
      await context.reply(Pong, { n });
    });
    endpoints.push(server);
    await server.start();
    const clientLog = recordingLogger();
    const client = createEndpoint({
      name: `${prefix}-Client`,
      transport: transport(urls(1, 2, 3)),
      logger: clientLog,
      routes: { [Work.name]: serverName, [Ping.name]: serverName },
      recoverability: { errorQueue },
      requestTimeoutMs: 15_000,
    });
    endpoints.push(client);
    await client.start();

    // 500 requests at once; each is answered with its own number or times out.
    const requests = () =>
      Promise.all(
        Array.from({ length: 500 }, (_, n) =>
          client.request(Ping, { n }, { expect: Pong }).then(
            (reply) => (reply.n === n ? 'answered' : 'wrong reply'),
            (error: unknown) => (error instanceof RequestTimeoutError ? 'timed out' : error),
          ),
        ),
      );
    const count = (outcomes: unknown[], outcome: string) =>
      outcomes.filter((o) => o === outcome).length;

    const total = 5_000;
    const sendStartedAt = new Map<number, number>();
    const streaming = pool(total, 4, async (n) => {
      sendStartedAt.set(n, Date.now());
      await client.send(Work, { n });
      await sleep(25);
    });
    streaming.catch(() => {});

    // 1. A follower (t3) stops and comes back.
    await expect.poll(() => handled.size, { timeout: 30_000 }).toBeGreaterThan(500);
    const followerRequests = requests();
    await clusterCtl(3, 'stop_app');
    await sleep(1_000);
    await clusterCtl(3, 'start_app');
    await clusterCtl(3, 'await_startup');
    const followerOutcomes = await followerRequests;

    // 2. The node holding the endpoint queue's leader, and the server's connection, stops (t2).
    const leaderRequests = requests();
    await clusterCtl(2, 'stop_app');
    await sleep(1_000);
    await clusterCtl(2, 'start_app');
    await clusterCtl(2, 'await_startup');
    const leaderOutcomes = await leaderRequests;

    // 3. The client's node (t1, holding its instance queue) dies for good, mid-stream.
    expect(handled.size).toBeLessThan(total - 1_000);
    const lastRequests = requests();
    await sleep(300);
    const pendingAtKill = client.stats.pendingRequests;
    const killedAt = Date.now();
    await killClusterNode(1);
    const lastOutcomes = await lastRequests;
    await streaming;
    await expect.poll(() => handled.size, { timeout: 60_000, interval: 100 }).toBe(total);

    // From the kill to the first message sent after it being handled.
    const resumedAt = Math.min(
      ...[...sendStartedAt]
        .filter(([, at]) => at > killedAt)
        .map(([n]) => handledAt.get(n) ?? Number.POSITIVE_INFINITY),
    );
    const duplicates = [...handled.values()].reduce((sum, times) => sum + times - 1, 0);
    console.info(
      `cluster: ${total} stream messages handled (${duplicates} twice); stream resumed ${resumedAt - killedAt} ms after the connected node died; ` +
        `requests answered: follower stop ${count(followerOutcomes, 'answered')}/500, leader stop ${count(leaderOutcomes, 'answered')}/500, ` +
        `connected node death ${count(lastOutcomes, 'answered')}/500 (${pendingAtKill} pending at the kill, ${count(lastOutcomes, 'timed out')} timed out, their replies lost with the instance queue)`,
    );
    // Only the instance queue's node going loses replies; a lost reply is a typed timeout.
    expect(count(followerOutcomes, 'answered')).toBe(500);
    expect(count(leaderOutcomes, 'answered')).toBe(500);
    expect(count(lastOutcomes, 'answered') + count(lastOutcomes, 'timed out')).toBe(500);
    // Each moved to the next node of its list: the server from t2 to t3, the client from t1 to
    // t2. They stayed on different nodes, exchanging requests and replies across them.
    const recoveredOn = (log: { lines: string[] }) =>
      log.lines
        .filter((line) => line.includes('recovered'))
        .map((line) => line.match(/:568\d/)?.[0]);
    expect(recoveredOn(serverLog)).toEqual([':5683']);
    expect(recoveredOn(clientLog)).toEqual([':5682']);
  });
});
