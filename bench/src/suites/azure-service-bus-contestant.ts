/**
 * One side of the Service Bus benchmark in a process of its own (`azure-service-bus.ts` starts
 * one per side): the raw SDK with the metadata named by its first argument, or Tidings. Each side
 * then has the engine to itself, as in a real service: in one process, the sides' messages of
 * different shapes pass through the same SDK and rhea functions and slow each other down.
 *
 * Protocol (IPC): the parent sends `{ kind: 'setup', connectionString, certificate }`, answered
 * `{ kind: 'ready' }`; then `{ kind: 'block', scenario, first, count, concurrency }`, answered with
 * a `BlockResult` measured here. Disconnecting closes the side and ends the process.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Agent } from 'node:https';
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
  silentLogger,
} from '@tidings/core';
import { PACKED_HEADERS, packHeaders } from '@tidings/core/transport';
import {
  type AdministrationOptions,
  createAzureServiceBusTransport,
  enableTcpNoDelay,
} from '@tidings/transport-azure-service-bus';
import { type BlockResult, measureBlock, runConcurrent, waitFor } from '../report.js';

/** Handler slots per endpoint and `maxConcurrentCalls` per raw receiver. */
const concurrency = 100;

const Order = defineMessage<{ id: number; sku: string }>('bench.Order');
const Ack = defineMessage<{ id: number }>('bench.Ack');
/** Requests use their own type, so telling them from one-way sends needs no extra property. */
const Quote = defineMessage<{ id: number; sku: string }>('bench.Quote');

const runId = () => `bench${randomBytes(3).toString('hex')}`;

interface Connection {
  readonly connectionString: string;
  /** Trusts the peer's self-signed certificate for its management endpoint. */
  readonly administration: AdministrationOptions;
}

/** What one side offers: a one-way send, a request, and the count its server has handled. */
interface Setup {
  send(i: number): Promise<unknown>;
  request(i: number): Promise<unknown>;
  handled(): number;
  close(): Promise<void>;
}

async function tidingsEndpoints(peer: Connection) {
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

// The raw SDK doing the same work: peek-lock, explicit completion, reply to replyTo.

/** What the raw SDK's messages carry besides body and id: nothing, Tidings' properties, six. */
export type RawMetadata = 'none' | 'bus' | 'six';

export const rawImpl: Record<RawMetadata, string> = {
  none: 'raw @azure/service-bus',
  bus: "raw @azure/service-bus + Tidings' properties",
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
  return metadata === 'bus' ? tidingsProperties(shape) : {};
}

async function rawSetup(peer: Connection, metadata: RawMetadata): Promise<Setup> {
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

async function tidingsSetup(peer: Connection): Promise<Setup> {
  const { client, handled, close } = await tidingsEndpoints(peer);
  return {
    send: (i) => client.send(Order, { id: i, sku: 'sku-1' }),
    request: (i) => client.request(Quote, { id: i, sku: 'sku-1' }, { expect: Ack }),
    handled,
    close,
  };
}

export interface BlockCommand {
  readonly kind: 'block';
  /** One-way: sent `concurrency` at a time, done once the server has handled them all. */
  readonly scenario: 'one-way' | 'request';
  readonly first: number;
  readonly count: number;
  readonly concurrency: number;
}

const runBlock = (setup: Setup, command: BlockCommand): Promise<BlockResult> =>
  measureBlock(async () => {
    const { first, count } = command;
    if (command.scenario === 'one-way') {
      const target = setup.handled() + count;
      await runConcurrent(count, command.concurrency, (i) => setup.send(first + i).then(() => {}));
      await waitFor(() => setup.handled() >= target);
      return undefined;
    }
    const { latenciesMs } = await runConcurrent(count, command.concurrency, (i) =>
      setup.request(first + i).then(() => {}),
    );
    return latenciesMs;
  });

const side = process.argv[2] as RawMetadata | 'tidings';
let setup: Setup | undefined;
process.on('message', (message: { kind: string }) => {
  const work = async () => {
    if (message.kind === 'setup') {
      const { connectionString, certificate } = message as unknown as {
        connectionString: string;
        certificate: string;
      };
      const peer = {
        connectionString,
        administration: { agent: new Agent({ ca: certificate, keepAlive: true }) },
      };
      setup = side === 'tidings' ? await tidingsSetup(peer) : await rawSetup(peer, side);
      return { kind: 'ready' };
    }
    if (setup === undefined) throw new Error('a block before setup');
    return { kind: 'block', ...(await runBlock(setup, message as BlockCommand)) };
  };
  work().then(
    (answer) => process.send?.(answer),
    (error: unknown) => {
      process.send?.({ kind: 'error', message: String((error as Error)?.stack ?? error) });
      process.exitCode = 1;
    },
  );
});
process.once('disconnect', () => {
  void (setup?.close() ?? Promise.resolve()).finally(() => process.exit());
});
