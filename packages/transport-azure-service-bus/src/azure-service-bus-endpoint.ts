import { RetryMode, ServiceBusClient, type ServiceBusClientOptions } from '@azure/service-bus';
import type {
  EndpointTopology,
  ReceiveSettings,
  TransportContext,
  TransportEndpoint,
  TransportOperation,
} from '@tidings/core/transport';
import type { FailWith } from './errors.js';
import { checkDistinctTopics } from './naming.js';
import { enableTcpNoDelay } from './no-delay.js';
import type { ResolvedAzureServiceBusOptions } from './options.js';
import { type ReceiveCounters, Receiver } from './receiver.js';
import { Sender } from './sender.js';
import { Topology } from './topology.js';

/** One client (one AMQP connection) per endpoint, with the transport's retry settings. */
function newClient(options: ResolvedAzureServiceBusOptions): ServiceBusClient {
  const clientOptions: ServiceBusClientOptions = {
    retryOptions: {
      maxRetries: options.maxRetries,
      timeoutInMs: options.operationTimeoutMs,
      mode: RetryMode.Exponential,
      retryDelayInMs: options.retryDelayMs,
      maxRetryDelayInMs: 30_000,
    },
  };
  const { connection } = options;
  const client =
    'connectionString' in connection
      ? new ServiceBusClient(connection.connectionString, clientOptions)
      : new ServiceBusClient(
          connection.fullyQualifiedNamespace,
          connection.credential as never,
          clientOptions,
        );
  if (options.tcpNoDelay) enableTcpNoDelay(client);
  return client;
}

/**
 * One endpoint on Service Bus: its entities declared at open, one client for its sends and
 * receives, a `Receiver` on its input and instance queues, a `Sender` for what it dispatches.
 */
export class AzureServiceBusEndpoint implements TransportEndpoint {
  private readonly sender: Sender;
  private readonly receiver: Receiver;

  private constructor(
    private readonly client: ServiceBusClient,
    private readonly topology: Topology,
    endpoint: EndpointTopology,
    context: TransportContext,
    options: ResolvedAzureServiceBusOptions,
    counters: ReceiveCounters,
    fail: FailWith,
  ) {
    this.sender = new Sender(client, options, context.logger, fail);
    const queues = [endpoint.inputQueue, endpoint.instanceQueue].filter(
      (queue): queue is string => queue !== undefined,
    );
    this.receiver = new Receiver(
      {
        client,
        options,
        logger: context.logger,
        counters,
        ensureOwnQueue: (queue) => topology.ensureOwnQueue(queue),
      },
      queues,
    );
  }

  /** Creates the endpoint's queues, connects, and subscribes to the event types it handles. */
  static async open(
    endpoint: EndpointTopology,
    context: TransportContext,
    options: ResolvedAzureServiceBusOptions,
    counters: ReceiveCounters,
    fail: FailWith,
  ): Promise<AzureServiceBusEndpoint> {
    checkDistinctTopics(endpoint.endpointName, endpoint.subscriptions);
    const topology = new Topology(endpoint, options, fail);
    await topology.createQueues();
    const client = newClient(options);
    try {
      for (const messageType of endpoint.subscriptions) await topology.subscribe(messageType);
    } catch (error) {
      await client.close().catch(() => {});
      throw error;
    }
    return new AzureServiceBusEndpoint(
      client,
      topology,
      endpoint,
      context,
      options,
      counters,
      fail,
    );
  }

  dispatch(operations: readonly TransportOperation[]): Promise<void> {
    return this.sender.dispatch(operations);
  }

  async startReceiving(receive: ReceiveSettings): Promise<void> {
    this.receiver.start(receive);
  }

  stopReceiving(): Promise<void> {
    return this.receiver.stop();
  }

  subscribe(messageType: string): Promise<void> {
    return this.topology.subscribe(messageType);
  }

  unsubscribe(messageType: string): Promise<void> {
    return this.topology.unsubscribe(messageType);
  }

  async close(): Promise<void> {
    await this.receiver.close();
    await this.sender.close();
    await this.client.close().catch(() => {});
  }
}
