import { type Logger, TransportUnavailableError } from '@tidings/core';
import type {
  EndpointTopology,
  ReceiveSettings,
  TransportEndpoint,
  TransportOperation,
} from '@tidings/core/transport';
import type { ChannelModel } from 'amqplib';
import * as amqp from 'amqplib';
import { type BrokerNode, NodeCursor } from './broker-nodes.js';
import { AmqpCode, amqpCodeOf, isClosedError, mapRabbitMqError } from './errors.js';
import type { ResolvedRabbitMqOptions } from './options.js';
import { Receiver } from './receiver.js';
import { Sender } from './sender.js';
import { Topology } from './topology.js';
import { WriteBatch } from './write-batch.js';

/** What every endpoint of one transport shares. */
export interface TransportShared {
  readonly options: ResolvedRabbitMqOptions;
  /** The cluster's nodes (one for a single broker). */
  readonly nodes: readonly BrokerNode[];
  readonly secrets: readonly (string | undefined)[];
  readonly socketOptions: Record<string, unknown>;
  /** The delay levels, declared once per transport (they are durable and shared). */
  delayTopology: Promise<void> | undefined;
}

/** What the receiver, sender and topology use of the endpoint they belong to. */
export interface EndpointLink {
  readonly closed: boolean;
  /** The connection's writes, one per pass; undefined while disconnected. */
  readonly writes: WriteBatch | undefined;
  /** False once a queue or exchange went away: recovery declares the topology again. */
  topologyDeclared: boolean;
  requireConnection(): ChannelModel;
  /** Starts the recovery loop unless it runs already. */
  kick(): void;
  /** Wakes everything waiting in `waitFor`. */
  notify(): void;
  /** Lets a waiting close check whether sends and handlers are done. */
  notifyIdle(): void;
  waitFor<T>(get: () => T | undefined, deadline: number): Promise<T>;
  sleep(ms: number): Promise<void>;
  onChannelError(purpose: string, error: Error): void;
  guard(operation: string, run: () => Promise<unknown>): Promise<void>;
}

const CLOSE_WAIT_MS = 5_000;

/**
 * One endpoint's connection: a confirm channel for sending, a channel for topology, and a
 * consumer channel. Any of them (or the connection) may be lost; one recovery loop puts back
 * whatever is missing, with backoff, and sends wait for it up to `unavailableTimeoutMs`.
 * Sending, receiving and topology live in `Sender`, `Receiver` and `Topology`; this class owns
 * the connection, its recovery and the endpoint's lifecycle.
 */
export class RabbitMqEndpoint implements TransportEndpoint, EndpointLink {
  private connection: ChannelModel | undefined;
  /** The connection's writes, one per pass. */
  writes: WriteBatch | undefined;
  topologyDeclared = false;
  closed = false;
  private recovering: Promise<void> | undefined;
  private waiters: Array<() => void> = [];
  private lastError: unknown;
  private wasConnected = false;
  private readonly sleeper = new AbortController();
  private idle: Array<() => void> = [];
  private readonly nodes: NodeCursor;
  /** The last connect found no node answering (set while connecting). */
  private connectRefused = false;
  private readonly brokerTopology: Topology;
  private readonly sender: Sender;
  private readonly receiver: Receiver;

  constructor(
    private readonly shared: TransportShared,
    private readonly topology: EndpointTopology,
    private readonly logger: Logger,
  ) {
    this.nodes = new NodeCursor(shared.nodes, shared.options.nodeOrder);
    this.brokerTopology = new Topology(this, shared, topology, logger);
    this.sender = new Sender(this, shared, this.brokerTopology, logger);
    this.receiver = new Receiver(this, shared, topology, logger);
  }

  private get options(): ResolvedRabbitMqOptions {
    return this.shared.options;
  }

  /** Connects and declares the topology; rejects (after releasing everything) if it cannot. */
  async open(): Promise<void> {
    try {
      await this.establish();
    } catch (error) {
      this.closed = true;
      await this.connection?.close().catch(() => {});
      throw mapRabbitMqError(error, {
        operation: `open endpoint '${this.topology.endpointName}' on ${this.nodes.description}`,
        secrets: this.shared.secrets,
      });
    }
  }

  dispatch(operations: readonly TransportOperation[]): Promise<void> {
    return this.sender.dispatch(operations);
  }

  startReceiving(settings: ReceiveSettings): Promise<void> {
    return this.receiver.startReceiving(settings);
  }

  stopReceiving(): Promise<void> {
    return this.receiver.stopReceiving();
  }

  subscribe(messageType: string): Promise<void> {
    return this.brokerTopology.subscribe(messageType);
  }

  unsubscribe(messageType: string): Promise<void> {
    return this.brokerTopology.unsubscribe(messageType);
  }

  // closing

  async close(): Promise<void> {
    if (this.closed) return;
    await this.stopReceiving();
    if (this.receiver.active > 0 || this.sender.pendingSends > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_WAIT_MS);
        this.idle.push(() => {
          if (this.receiver.active === 0 && this.sender.pendingSends === 0) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    }
    // Coalesced acks still waiting for their pass go out before the connection closes.
    this.receiver.flush();
    this.closed = true;
    this.sleeper.abort();
    this.notify();
    const connection = this.connection;
    this.connection = undefined;
    this.sender.forget();
    this.brokerTopology.forget();
    this.receiver.forget();
    if (connection !== undefined) await connection.close().catch(() => {});
    await this.recovering?.catch(() => {});
  }

  notifyIdle(): void {
    const idle = this.idle;
    this.idle = [];
    for (const check of idle) check();
    // Waiters whose condition is not yet met registered again in their check.
    if (this.receiver.active > 0 || this.sender.pendingSends > 0) this.idle.push(...idle);
  }

  // recovery

  private incomplete(): boolean {
    return (
      this.connection === undefined ||
      !this.topologyDeclared ||
      this.sender.incomplete ||
      this.receiver.incomplete
    );
  }

  /** Starts the recovery loop unless it runs already. */
  kick(): void {
    if (this.closed || this.recovering !== undefined) return;
    this.recovering = this.recover().finally(() => {
      this.recovering = undefined;
      if (!this.closed && this.incomplete()) this.kick();
    });
  }

  private async recover(): Promise<void> {
    let attempt = 0;
    let retriedAtOnce = false;
    while (!this.closed && this.incomplete()) {
      this.connectRefused = false;
      const reconnecting = this.wasConnected && this.connection === undefined;
      try {
        await this.establish();
        if (attempt > 0 || !this.wasConnected || reconnecting) {
          this.logger.info(`RabbitMQ: endpoint '${this.topology.endpointName}' recovered`, {
            url: this.nodes.currentNode.redactedUrl,
            attempts: attempt + 1,
          });
        }
        attempt = 0;
        retriedAtOnce = false;
      } catch (error) {
        this.lastError = error;
        // Channels close before their connection: recovery may have begun on a connection that
        // was going. Its loss is news, not a refusal: try the nodes once more before backing off.
        if (this.connection === undefined && !this.connectRefused && !retriedAtOnce) {
          retriedAtOnce = true;
          continue;
        }
        attempt++;
        // A queue or exchange vanished under a consume or bind: declare the topology again.
        if (amqpCodeOf(error) === AmqpCode.NotFound) this.topologyDeclared = false;
        const delay = Math.min(
          this.options.reconnectMaxDelayMs,
          this.options.reconnectInitialDelayMs * 2 ** (attempt - 1),
        );
        const mapped =
          this.receiver.instanceInUse ??
          mapRabbitMqError(error, {
            operation: `recover endpoint '${this.topology.endpointName}' on ${this.nodes.description}`,
            secrets: this.shared.secrets,
          });
        (attempt <= 3 ? this.logger.warn : this.logger.debug).call(
          this.logger,
          `${mapped.message} Retrying in ${Math.round(delay)} ms.`,
          { attempt },
        );
        await this.sleep(delay * (0.8 + Math.random() * 0.4));
      }
    }
    this.notify();
  }

  /** Puts back whatever is missing: connection, topology, publisher, consumer. */
  private async establish(): Promise<void> {
    if (this.connection === undefined) await this.connect();
    if (!this.topologyDeclared) {
      await this.brokerTopology.declareTopology();
      this.topologyDeclared = true;
    }
    await this.sender.reopen();
    await this.receiver.reopen();
    this.wasConnected = true;
    this.notify();
  }

  private async connect(): Promise<void> {
    // Every node in turn: a cluster keeps serving while one is down (backoff only if none answers).
    this.connectRefused = true;
    const connection = await this.nodes.connect((node) =>
      amqp.connect(node.connectUrl, {
        ...this.shared.socketOptions,
        clientProperties: {
          connection_name: `${this.options.connectionName}:${this.topology.endpointName}`,
        },
      }),
    );
    this.connectRefused = false;
    if (this.closed) {
      await connection.close().catch(() => {});
      throw new TransportUnavailableError('RabbitMQ: the endpoint is closed.');
    }
    connection.on('error', (error: Error) => {
      this.logger.debug('RabbitMQ: connection error', {
        error: mapRabbitMqError(error, {
          operation: 'keep the connection',
          secrets: this.shared.secrets,
        }).message,
      });
    });
    connection.on('blocked', (reason: string) => {
      this.logger.warn(`RabbitMQ: the broker blocked publishing (${reason}); sends wait`);
    });
    connection.on('close', (error?: Error) => {
      if (this.connection !== connection) return;
      this.connection = undefined;
      this.sender.forget();
      this.writes = undefined;
      this.brokerTopology.forget();
      this.receiver.connectionLost();
      this.topologyDeclared = false;
      if (this.closed) return;
      this.nodes.lost();
      this.logger.warn(
        `RabbitMQ: connection of endpoint '${this.topology.endpointName}' lost; reconnecting`,
        {
          url: this.nodes.currentNode.redactedUrl,
          ...(error
            ? {
                error: mapRabbitMqError(error, {
                  operation: 'keep the connection',
                  secrets: this.shared.secrets,
                }).message,
              }
            : {}),
        },
      );
      this.kick();
    });
    this.writes = WriteBatch.attach(connection);
    this.connection = connection;
  }

  requireConnection(): ChannelModel {
    const connection = this.connection;
    if (connection === undefined) throw new Error('connection closed');
    return connection;
  }

  onChannelError(purpose: string, error: Error): void {
    const code = amqpCodeOf(error);
    // A 404 on the send channel means an exchange went away: declare it again next time.
    if (code === AmqpCode.NotFound) {
      this.brokerTopology.forgetDeclared();
      this.topologyDeclared = false;
    }
    this.logger.warn(`RabbitMQ: ${purpose} channel closed by the broker; reopening it`, {
      error: mapRabbitMqError(error, { operation: purpose, secrets: this.shared.secrets }).message,
    });
  }

  /** Runs a topology change, waiting for a lost connection to come back first. */
  async guard(operation: string, run: () => Promise<unknown>): Promise<void> {
    const deadline = Date.now() + this.options.unavailableTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        if (this.connection === undefined) await this.waitFor(() => this.connection, deadline);
        await run();
        return;
      } catch (error) {
        if (!this.closed && isClosedError(error) && attempt < 5 && Date.now() < deadline) continue;
        throw mapRabbitMqError(error, { operation, secrets: this.shared.secrets });
      }
    }
  }

  // waiting

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Waits until `get` returns something, the endpoint closes, or the deadline passes. */
  async waitFor<T>(get: () => T | undefined, deadline: number): Promise<T> {
    for (;;) {
      const value = get();
      if (value !== undefined) return value;
      if (this.closed) throw new TransportUnavailableError('RabbitMQ: the endpoint is closed.');
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        const last =
          this.lastError === undefined
            ? ''
            : ` Last error: ${mapRabbitMqError(this.lastError, { operation: 'connect', secrets: this.shared.secrets }).message}`;
        throw new TransportUnavailableError(
          `RabbitMQ: ${this.nodes.description} was unavailable for ${this.options.unavailableTimeoutMs} ms.${last}`,
        );
      }
      this.kick();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, remaining);
        function wake() {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.push(wake);
      });
    }
  }

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.sleeper.signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      const signal = this.sleeper.signal;
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done);
    });
  }
}
