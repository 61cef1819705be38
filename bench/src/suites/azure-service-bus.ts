import { fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { Agent } from 'node:https';
import { fileURLToPath } from 'node:url';
import {
  ServiceBusAdministrationClient,
  ServiceBusClient,
  type ServiceBusMessage,
  type ServiceBusReceivedMessage,
  type ServiceBusReceiver,
} from '@azure/service-bus';
import {
  createEndpoint,
  defineMessage,
  type Endpoint,
  Headers,
  type MessageIntent,
  PACKED_HEADERS,
  packHeaders,
  silentLogger,
} from '@tidings/core';
import {
  type AdministrationOptions,
  createAzureServiceBusTransport,
  enableTcpNoDelay,
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
 * Azure Service Bus through the test peer (an AMQP 1.0 peer on rhea) in a process of its own, as
 * a broker runs apart from its clients. The peer is not Service Bus: no network hop to Azure, no
 * replication, no throttling. Its figures compare Tidings with the raw @azure/service-bus SDK
 * doing the same work in the same run; they are no reference for a real namespace. Both sides
 * create their queues through the peer's management endpoint and run with TCP_NODELAY (see
 * enableTcpNoDelay).
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
interface CpuStart {
  readonly own: NodeJS.CpuUsage;
  readonly peerMicros: number;
}

/** CPU from here on: this process's (the clients, Tidings and the SDK) and the peer's. */
const cpuStart = async (peer: Peer): Promise<CpuStart> => ({
  own: process.cpuUsage(),
  peerMicros: await peer.cpuMicros(),
});

const cpu = async (peer: Peer, start: CpuStart, messages: number) => {
  const peerMicros = (await peer.cpuMicros()) - start.peerMicros;
  return {
    note: `${cpuNote(start.own, messages, 'client+server')}; peer ${Math.round(peerMicros / messages)} µs/msg`,
  };
};

interface Peer {
  readonly connectionString: string;
  /** Trusts the peer's self-signed certificate for its management endpoint. */
  readonly administration: AdministrationOptions;
  /** The peer process's CPU time so far (µs). */
  cpuMicros(): Promise<number>;
  close(): Promise<void>;
}

const peerScript = fileURLToPath(new URL('./servicebus-peer-process.js', import.meta.url));

/** How long the peer process may take to listen. */
const PEER_START_TIMEOUT_MS = 30_000;

async function startPeerProcess(): Promise<Peer> {
  const child = fork(peerScript, [], {
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const gone = () => new Error('the Service Bus peer process has exited');
  // A send on a channel already closed reports here; the request it belonged to fails on exit.
  child.on('error', () => {});
  const listening = new Promise<{ connectionString: string; certificate: string }>(
    (resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill();
        reject(new Error(`the Service Bus peer did not listen within ${PEER_START_TIMEOUT_MS} ms`));
      }, PEER_START_TIMEOUT_MS);
      child.once('message', (message) => {
        clearTimeout(timer);
        resolve(message as never);
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(gone());
      });
    },
  );
  const { connectionString, certificate } = await listening;
  return {
    connectionString,
    administration: { agent: new Agent({ ca: certificate, keepAlive: true }) },
    cpuMicros: () =>
      new Promise((resolve, reject) => {
        if (!child.connected) {
          reject(gone());
          return;
        }
        child.once('message', (message) => resolve((message as { cpuMicros: number }).cpuMicros));
        void exited.then(() => reject(gone()));
        child.send('cpu');
      }),
    close: async () => {
      if (child.connected) child.disconnect();
      await exited;
    },
  };
}

// Tidings

async function tidingsEndpoints(peer: Peer) {
  const id = runId();
  const transport = () =>
    createAzureServiceBusTransport({
      connectionString: peer.connectionString,
      administration: peer.administration,
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

async function tidingsOneWay(peer: Peer): Promise<BenchRow> {
  const { client, handled, close } = await tidingsEndpoints(peer);
  const cpuFrom = await cpuStart(peer);
  const started = performance.now();
  await runConcurrent(oneWayCount, concurrency, (i) => client.send(Order, { id: i, sku: 'sku-1' }));
  await waitFor(() => handled() >= oneWayCount);
  const elapsed = performance.now() - started;
  const used = await cpu(peer, cpuFrom, oneWayCount);
  await close();
  return { ...row('one-way', 'tidings', oneWayCount, elapsed), ...used };
}

async function tidingsRequests(peer: Peer, total: number, c: number) {
  const { client, close } = await tidingsEndpoints(peer);
  const cpuFrom = await cpuStart(peer);
  const { elapsedMs, latenciesMs } = await runConcurrent(total, c, async (i) => {
    await client.request(Quote, { id: i, sku: 'sku-1' }, { expect: Ack });
  });
  const used = await cpu(peer, cpuFrom, total);
  await close();
  return { ...row(`request/reply c=${c}`, 'tidings', total, elapsedMs, latenciesMs), ...used };
}

// The raw SDK doing the same work: peek-lock, explicit completion, reply to replyTo.

/** What the raw SDK's messages carry besides body and id. */
type RawMetadata = 'none' | 'tidings' | 'six';

const rawImpl: Record<RawMetadata, string> = {
  none: 'raw @azure/service-bus',
  tidings: "raw @azure/service-bus + Tidings' properties",
  six: 'raw @azure/service-bus + 6 app properties',
};

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

/** The bus headers Service Bus carries as native properties (the transport's message mapping). */
const nativeHeaders: ReadonlySet<string> = new Set<string>([
  Headers.MessageId,
  Headers.CorrelationId,
  Headers.ReplyTo,
  Headers.ContentType,
  Headers.MessageType,
]);

interface Shape {
  readonly messageId: string;
  readonly correlationId: string;
  readonly conversationId: string;
  readonly intent: MessageIntent;
  readonly messageType: string;
  readonly endpoint: string;
  readonly replyTo?: string | undefined;
}

/**
 * The native properties and the one packed application property Tidings sends with a message,
 * built by core's own packing: what carrying the bus headers at all costs the SDK, with no Tidings
 * code running. Tidings' ratio cannot beat this row's.
 */
function tidingsProperties(shape: Shape): Partial<ServiceBusMessage> {
  const { packed } = packHeaders(
    {
      [Headers.MessageId]: shape.messageId,
      [Headers.CorrelationId]: shape.correlationId,
      [Headers.ConversationId]: shape.conversationId,
      [Headers.Intent]: shape.intent,
      [Headers.TimeSent]: new Date().toISOString(),
      [Headers.OriginatingEndpoint]: shape.endpoint,
      [Headers.OriginatingInstance]: 'c1',
      [Headers.MessageType]: shape.messageType,
      [Headers.ContentType]: 'application/json',
    },
    nativeHeaders,
  );
  return {
    correlationId: shape.correlationId,
    ...(shape.replyTo !== undefined ? { replyTo: shape.replyTo } : {}),
    contentType: 'application/json',
    subject: shape.messageType,
    applicationProperties: { [PACKED_HEADERS]: packed as string },
  };
}

function metadataFor(metadata: RawMetadata, shape: Shape): Partial<ServiceBusMessage> {
  if (metadata === 'six') return { applicationProperties: busLikeProperties(shape.messageId) };
  return metadata === 'tidings' ? tidingsProperties(shape) : {};
}

async function rawSetup(peer: Peer, metadata: RawMetadata) {
  const id = runId();
  const serverQueue = `${id}-raw-Server`;
  const clientQueue = `${id}-raw-Client`;
  const admin = new ServiceBusAdministrationClient(peer.connectionString, peer.administration);
  await admin.createQueue(serverQueue);
  await admin.createQueue(clientQueue);
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
    // A one-way send carries a reply address too when it has Tidings' properties.
    if (message.replyTo && message.subject !== Order.name) {
      let sender = replySenders.get(message.replyTo);
      if (!sender) {
        sender = serverClient.createSender(message.replyTo);
        replySenders.set(message.replyTo, sender);
      }
      const messageId = randomUUID();
      const correlationId = message.messageId as string;
      await sender.sendMessages({
        body: Buffer.from(JSON.stringify({ id: body.id })),
        messageId,
        correlationId,
        ...metadataFor(metadata, {
          messageId,
          correlationId,
          conversationId: correlationId,
          intent: 'reply',
          messageType: Ack.name,
          endpoint: serverQueue,
          replyTo: serverQueue,
        }),
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
  const shape = (messageId: string, messageType: string): Shape => ({
    messageId,
    correlationId: messageId,
    conversationId: messageId,
    intent: 'send',
    messageType,
    endpoint: clientQueue,
    replyTo: clientQueue,
  });
  const send = (i: number) => {
    const messageId = randomUUID();
    return toServer.sendMessages({
      body: Buffer.from(JSON.stringify({ id: i, sku: 'sku-1' })),
      messageId,
      ...metadataFor(metadata, shape(messageId, Order.name)),
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
        ...metadataFor(metadata, shape(messageId, Quote.name)),
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

async function rawOneWay(peer: Peer, metadata: RawMetadata): Promise<BenchRow> {
  const raw = await rawSetup(peer, metadata);
  const cpuFrom = await cpuStart(peer);
  const started = performance.now();
  await runConcurrent(oneWayCount, concurrency, (i) => raw.send(i));
  await waitFor(() => raw.handled() >= oneWayCount);
  const elapsed = performance.now() - started;
  const used = await cpu(peer, cpuFrom, oneWayCount);
  await raw.close();
  return {
    ...row('one-way', rawImpl[metadata], oneWayCount, elapsed),
    ...used,
  };
}

async function rawRequests(
  peer: Peer,
  total: number,
  c: number,
  metadata: RawMetadata,
): Promise<BenchRow> {
  const raw = await rawSetup(peer, metadata);
  const cpuFrom = await cpuStart(peer);
  const { elapsedMs, latenciesMs } = await runConcurrent(total, c, (i) => raw.request(i));
  const used = await cpu(peer, cpuFrom, total);
  await raw.close();
  return {
    ...row(`request/reply c=${c}`, rawImpl[metadata], total, elapsedMs, latenciesMs),
    ...used,
  };
}

export const azureServiceBusSuite: BenchSuite = {
  name: 'azure-service-bus',
  async run() {
    const peer = await startPeerProcess();
    try {
      return await medianOfRounds(7, async () => [
        await rawOneWay(peer, 'none'),
        await rawOneWay(peer, 'tidings'),
        await rawOneWay(peer, 'six'),
        await tidingsOneWay(peer),
        await rawRequests(peer, requestsAtOne, 1, 'none'),
        await rawRequests(peer, requestsAtOne, 1, 'tidings'),
        await rawRequests(peer, requestsAtOne, 1, 'six'),
        await tidingsRequests(peer, requestsAtOne, 1),
        await rawRequests(peer, requestsAtHundred, 100, 'none'),
        await rawRequests(peer, requestsAtHundred, 100, 'tidings'),
        await rawRequests(peer, requestsAtHundred, 100, 'six'),
        await tidingsRequests(peer, requestsAtHundred, 100),
      ]);
    } finally {
      await peer.close();
    }
  },
};
