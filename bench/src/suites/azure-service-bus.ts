import { randomBytes, randomUUID } from 'node:crypto';
import {
  ServiceBusClient,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
} from '@azure/service-bus';
import { createEndpoint, defineMessage, type Endpoint, silentLogger } from '@tidings/core';
import { type ServiceBusPeer, startServiceBusPeer } from '@tidings/servicebus-peer';
import {
  createAzureServiceBusTransport,
  enableTcpNoDelay,
  type TopologyInstaller,
} from '@tidings/transport-azure-service-bus';
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
 * Azure Service Bus through the test peer (an AMQP 1.0 peer on rhea, in this process). The peer
 * is not Service Bus: no network hop to Azure, no replication, no throttling. Its figures compare
 * Tidings with the raw @azure/service-bus SDK doing the same work in the same run; they are no
 * reference for a real namespace. Both sides run with TCP_NODELAY (see enableTcpNoDelay).
 */
const transportName = 'azure-service-bus (test peer, not Service Bus)';
const oneWayCount = 5_000;
const requestsAtOne = 1_000;
const requestsAtHundred = 5_000;
const concurrency = 100;

const Order = defineMessage<{ id: number; sku: string }>('bench.Order');
const Ack = defineMessage<{ id: number }>('bench.Ack');
/** Requests use their own type, so telling them from one-way sends needs no extra property. */
const Quote = defineMessage<{ id: number; sku: string }>('bench.Quote');

const runId = () => `bench${randomBytes(3).toString('hex')}`;

const row = rowFor(transportName);
/** The clients, Tidings and the peer all run in this process. */
const cpu = (start: NodeJS.CpuUsage, messages: number) => ({
  note: cpuNote(start, messages, 'client+server+peer'),
});

function installer(peer: ServiceBusPeer): TopologyInstaller {
  return {
    ensureQueue: async (name, settings) => peer.createQueue(name, settings),
    ensureTopic: async (name) => peer.createTopic(name),
    ensureSubscription: async (topic, name, settings) =>
      peer.createSubscription(topic, name, settings),
    deleteSubscription: async (topic, name) => void peer.deleteSubscription(topic, name),
  };
}

// Tidings

async function tidingsEndpoints(peer: ServiceBusPeer) {
  const id = runId();
  const transport = () =>
    createAzureServiceBusTransport({
      connectionString: peer.connectionString,
      installer: installer(peer),
    });
  let handled = 0;
  const server = createEndpoint({
    name: `${id}-Server`,
    transport: transport(),
    logger: silentLogger,
    concurrency,
    recoverability: { errorQueue: `${id}-error` },
  });
  server.handle(Order, () => {
    handled++;
  });
  server.handle(Quote, async (quote, ctx) => {
    handled++;
    await ctx.reply(Ack, { id: quote.id });
  });
  const client: Endpoint = createEndpoint({
    name: `${id}-Client`,
    instanceId: 'c1',
    transport: transport(),
    logger: silentLogger,
    routes: { [Order.name]: `${id}-Server`, [Quote.name]: `${id}-Server` },
    maxPendingRequests: 10_000,
    concurrency,
    recoverability: { errorQueue: `${id}-error` },
  });
  await server.start();
  await client.start();
  // Warm up: links attached and credit flowing before measuring.
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      client.request(Quote, { id: -i, sku: 'warm' }, { expect: Ack }),
    ),
  );
  handled = 0;
  return {
    client,
    handled: () => handled,
    close: async () => {
      await client.stop();
      await server.stop();
    },
  };
}

async function tidingsOneWay(peer: ServiceBusPeer): Promise<BenchRow> {
  const { client, handled, close } = await tidingsEndpoints(peer);
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  await runConcurrent(oneWayCount, concurrency, (i) => client.send(Order, { id: i, sku: 'sku-1' }));
  await waitFor(() => handled() >= oneWayCount);
  const elapsed = performance.now() - started;
  const used = cpu(cpuStart, oneWayCount);
  await close();
  return { ...row('one-way', 'tidings', oneWayCount, elapsed), ...used };
}

async function tidingsRequests(peer: ServiceBusPeer, total: number, c: number) {
  const { client, close } = await tidingsEndpoints(peer);
  const cpuStart = process.cpuUsage();
  const { elapsedMs, latenciesMs } = await runConcurrent(total, c, async (i) => {
    await client.request(Quote, { id: i, sku: 'sku-1' }, { expect: Ack });
  });
  const used = cpu(cpuStart, total);
  await close();
  return { ...row(`request/reply c=${c}`, 'tidings', total, elapsedMs, latenciesMs), ...used };
}

// The raw SDK doing the same work: peek-lock, explicit completion, reply to replyTo.

const rawImpl = 'raw @azure/service-bus';
const rawWithHeaders = 'raw @azure/service-bus + 6 app properties';

/**
 * Six application properties shaped like bus headers (names and typical values), for context
 * rows: what carrying them one property each costs the SDK, the reason Tidings packs them into
 * one (ADR 8).
 */
function busLikeProperties(id: string): Record<string, string> {
  return {
    'tidings.conversation-id': id,
    'tidings.message-type': 'bench.Order',
    'tidings.time-sent': new Date().toISOString(),
    'tidings.intent': 'send',
    'tidings.originating-endpoint': 'bench-Client',
    'tidings.originating-instance': 'c1',
  };
}

async function rawSetup(peer: ServiceBusPeer, withHeaders = false) {
  const id = runId();
  const serverQueue = `${id}-raw-Server`;
  const clientQueue = `${id}-raw-Client`;
  peer.createQueue(serverQueue);
  peer.createQueue(clientQueue);
  const serverClient = new ServiceBusClient(peer.connectionString);
  const clientClient = new ServiceBusClient(peer.connectionString);
  // The transport turns TCP_NODELAY on (about 40 ms per round trip otherwise); so does the
  // baseline, so the ratio measures Tidings, not a socket option.
  enableTcpNoDelay(serverClient);
  enableTcpNoDelay(clientClient);
  const toServer = clientClient.createSender(serverQueue);
  const replySenders = new Map<string, ReturnType<ServiceBusClient['createSender']>>();
  let handled = 0;
  const serverReceiver = serverClient.createReceiver(serverQueue, { skipParsingBodyAsJson: true });
  const serve = async (message: ServiceBusReceivedMessage) => {
    handled++;
    const body = JSON.parse(Buffer.from(message.body as Buffer).toString()) as { id: number };
    if (message.replyTo) {
      let sender = replySenders.get(message.replyTo);
      if (!sender) {
        sender = serverClient.createSender(message.replyTo);
        replySenders.set(message.replyTo, sender);
      }
      const messageId = randomUUID();
      await sender.sendMessages({
        body: Buffer.from(JSON.stringify({ id: body.id })),
        messageId,
        correlationId: message.messageId as string,
        ...(withHeaders ? { applicationProperties: busLikeProperties(messageId) } : {}),
      });
    }
    await serverReceiver.completeMessage(message);
  };
  const serverSubscription = serverReceiver.subscribe(
    { processMessage: serve, processError: async () => {} },
    { autoCompleteMessages: false, maxConcurrentCalls: concurrency },
  );
  const pending = new Map<string, () => void>();
  const clientReceiver: ServiceBusReceiver = clientClient.createReceiver(clientQueue, {
    skipParsingBodyAsJson: true,
  });
  const clientSubscription = clientReceiver.subscribe(
    {
      processMessage: async (message) => {
        pending.get(message.correlationId as string)?.();
        pending.delete(message.correlationId as string);
        await clientReceiver.completeMessage(message);
      },
      processError: async () => {},
    },
    { autoCompleteMessages: false, maxConcurrentCalls: concurrency },
  );
  const send = (i: number, reply: boolean) => {
    const messageId = randomUUID();
    return toServer.sendMessages({
      body: Buffer.from(JSON.stringify({ id: i, sku: 'sku-1' })),
      messageId,
      ...(reply ? { replyTo: clientQueue } : {}),
      ...(withHeaders ? { applicationProperties: busLikeProperties(messageId) } : {}),
    });
  };
  const request = (i: number) => {
    const messageId = randomUUID();
    const answered = new Promise<void>((resolve) => pending.set(messageId, resolve));
    return toServer
      .sendMessages({
        body: Buffer.from(JSON.stringify({ id: i, sku: 'sku-1' })),
        messageId,
        replyTo: clientQueue,
        ...(withHeaders ? { applicationProperties: busLikeProperties(messageId) } : {}),
      })
      .then(() => answered);
  };
  await Promise.all(Array.from({ length: 20 }, (_, i) => request(-i)));
  handled = 0;
  return {
    send,
    request,
    handled: () => handled,
    close: async () => {
      await serverSubscription.close();
      await clientSubscription.close();
      await serverClient.close();
      await clientClient.close();
    },
  };
}

async function rawOneWay(peer: ServiceBusPeer, withHeaders = false): Promise<BenchRow> {
  const raw = await rawSetup(peer, withHeaders);
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  await runConcurrent(oneWayCount, concurrency, (i) => raw.send(i, false));
  await waitFor(() => raw.handled() >= oneWayCount);
  const elapsed = performance.now() - started;
  const used = cpu(cpuStart, oneWayCount);
  await raw.close();
  return {
    ...row('one-way', withHeaders ? rawWithHeaders : rawImpl, oneWayCount, elapsed),
    ...used,
  };
}

async function rawRequests(
  peer: ServiceBusPeer,
  total: number,
  c: number,
  withHeaders = false,
): Promise<BenchRow> {
  const raw = await rawSetup(peer, withHeaders);
  const cpuStart = process.cpuUsage();
  const { elapsedMs, latenciesMs } = await runConcurrent(total, c, (i) => raw.request(i));
  const used = cpu(cpuStart, total);
  await raw.close();
  const impl = withHeaders ? rawWithHeaders : rawImpl;
  return { ...row(`request/reply c=${c}`, impl, total, elapsedMs, latenciesMs), ...used };
}

export const azureServiceBusSuite: BenchSuite = {
  name: 'azure-service-bus',
  async run() {
    const peer = await startServiceBusPeer();
    try {
      return await medianOfRounds(5, async () => [
        await rawOneWay(peer),
        await rawOneWay(peer, true),
        await tidingsOneWay(peer),
        await rawRequests(peer, requestsAtOne, 1),
        await rawRequests(peer, requestsAtOne, 1, true),
        await tidingsRequests(peer, requestsAtOne, 1),
        await rawRequests(peer, requestsAtHundred, 100),
        await rawRequests(peer, requestsAtHundred, 100, true),
        await tidingsRequests(peer, requestsAtHundred, 100),
      ]);
    } finally {
      await peer.close();
    }
  },
};
