import { type Logger, silentLogger, TransportUnavailableError } from '@tidings/core';
import { redactError, redactSecrets } from '@tidings/core/transport';
import { isRetryableProduceFailure, mapKafkaError } from './errors.js';
import { type ClientLogLevel, createKafkaClient, type KafkaClient } from './kafka-client.js';
import type { ResolvedKafkaOptions } from './options.js';
import { ProducerBatcher } from './producer-batcher.js';
import { KafkaTopology } from './topology.js';

/** Attempts to reach the cluster at start are this far apart at first, then twice as far. */
const CONNECT_RETRY_MIN_MS = 100;
const CONNECT_RETRY_MAX_MS = 1_000;

/**
 * Why a connection failed, as the socket error code only: kafkajs's messages name the broker's
 * address, which is configuration, not for whoever sees the error.
 */
function reasonOf(failure: unknown): string {
  if (failure === undefined) return ': no broker answered in time';
  let text = '';
  // kafkajs wraps the socket's error (originalError), retries wrap that again.
  for (let error: unknown = failure, depth = 0; error instanceof Error && depth < 5; depth++) {
    text += ` ${error.message}`;
    error = (error as { originalError?: unknown }).originalError ?? error.cause;
  }
  const code =
    /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)\b/.exec(
      text,
    )?.[1];
  return code === undefined ? '' : `: ${code}`;
}

/**
 * A transport's link to the cluster, shared by its endpoints: one client (producer and admin),
 * its producer batcher and the topics known. Connected by the first endpoint that opens, closed
 * with the last one (or by the transport's `close`).
 */
export class KafkaConnection {
  /** Cut out of error messages and their causes: the password, and where the brokers are. */
  readonly secrets: readonly (string | undefined)[];
  readonly topology: KafkaTopology;
  private client: KafkaClient | undefined;
  private connecting: Promise<KafkaClient> | undefined;
  private producerBatcher: ProducerBatcher | undefined;
  private openEndpoints = 0;
  private logger: Logger = silentLogger;
  /** Cut out of log lines. */
  private readonly logSecrets: readonly (string | undefined)[];

  constructor(private readonly settings: ResolvedKafkaOptions) {
    this.logSecrets = [settings.sasl?.password];
    this.secrets = [settings.sasl?.password, ...settings.brokers];
    this.topology = new KafkaTopology(settings, this.secrets);
  }

  /** The shared producer's batcher; undefined while not connected. */
  get batcher(): ProducerBatcher | undefined {
    return this.producerBatcher;
  }

  /**
   * Connects if no endpoint has yet, and counts an endpoint in; `open` runs with the client. If
   * it fails, the endpoint is counted out again (closing the connection if it was the only one).
   */
  async withEndpoint<T>(logger: Logger, open: (kafka: KafkaClient) => Promise<T>): Promise<T> {
    if (this.logger === silentLogger) this.logger = logger;
    const kafka = await this.connect();
    this.openEndpoints++;
    try {
      return await open(kafka);
    } catch (error) {
      await this.endpointClosed();
      throw error;
    }
  }

  /** Counts an endpoint out; the last one out closes the connection. */
  async endpointClosed(): Promise<void> {
    if (--this.openEndpoints === 0) await this.close();
  }

  /** Closes the shared producer and admin connections (endpoints close their own consumers). */
  readonly close = async (): Promise<void> => {
    const closing = this.client;
    this.client = undefined;
    this.producerBatcher = undefined;
    this.topology.forgetCreated();
    await closing?.close();
  };

  private connect(): Promise<KafkaClient> {
    if (this.client !== undefined) return Promise.resolve(this.client);
    this.connecting ??= this.connectFresh();
    return this.connecting;
  }

  private async connectFresh(): Promise<KafkaClient> {
    const { settings } = this;
    const fresh = createKafkaClient({
      brokers: settings.brokers,
      clientId: settings.clientId,
      ssl: settings.ssl,
      sasl: settings.sasl,
      mapBrokerAddress: settings.mapBrokerAddress,
      connectionTimeoutMs: settings.connectionTimeoutMs,
      requestTimeoutMs: settings.requestTimeoutMs,
      retries: settings.retries,
      log: this.log,
    });
    try {
      await this.reachCluster(fresh);
      await fresh.connect();
    } catch (error) {
      await fresh.close();
      throw mapKafkaError(error, { operation: 'connect', secrets: this.secrets });
    } finally {
      this.connecting = undefined;
    }
    this.client = fresh;
    this.producerBatcher = new ProducerBatcher(
      (records) => fresh.produce(records),
      // The declared per-message limit bounds whole requests too: the broker applies its limit
      // to each partition's batch in a request, and one batch may hold every record.
      { maxRecords: settings.maxBatchRecords, maxBytes: settings.maxMessageSizeBytes },
      isRetryableProduceFailure,
    );
    return fresh;
  }

  /**
   * Tries to reach the cluster until `connectTimeoutMs` has passed, then fails with one error.
   * kafkajs alone would retry as `retries` says (seconds, one log line per broker per attempt),
   * with the producer and the admin client each retrying on their own, one of them still at it
   * after the other had failed.
   */
  private async reachCluster(kafka: KafkaClient): Promise<void> {
    const { connectTimeoutMs } = this.settings;
    const deadline = Date.now() + connectTimeoutMs;
    for (
      let delayMs = CONNECT_RETRY_MIN_MS;
      ;
      delayMs = Math.min(2 * delayMs, CONNECT_RETRY_MAX_MS)
    ) {
      let timer: NodeJS.Timeout | undefined;
      const outOfTime = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now()));
      });
      let failure: unknown;
      try {
        const reached = await Promise.race([
          kafka.reach().then(() => 'reached' as const),
          outOfTime,
        ]);
        if (reached === 'reached') return;
      } catch (error) {
        failure = error;
        const mapped = mapKafkaError(error, { operation: 'connect', secrets: this.secrets });
        // Not a matter of reaching it (credentials refused, say): trying again changes nothing.
        if (!(mapped instanceof TransportUnavailableError)) throw mapped;
      } finally {
        clearTimeout(timer);
      }
      if (failure === undefined || Date.now() + delayMs >= deadline) {
        throw new TransportUnavailableError(
          `Kafka: could not reach the cluster within ${connectTimeoutMs} ms (connectTimeoutMs)${reasonOf(failure)}. Check the brokers option and that the cluster is up and reachable from here.`,
          { cause: redactError(failure, this.secrets) },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }

  private readonly log = (
    level: ClientLogLevel,
    message: string,
    fields: Record<string, unknown>,
  ): void => {
    const secrets = this.logSecrets;
    const text = redactSecrets(message, secrets);
    const safe: Record<string, unknown> = {};
    for (const name in fields) {
      const value = fields[name];
      safe[name] = typeof value === 'string' ? redactSecrets(value, secrets) : value;
    }
    // kafkajs's info chatter (joins, starts) is debug here.
    if (level === 'error') this.logger.error(text, safe);
    else if (level === 'warn') this.logger.warn(text, safe);
    else this.logger.debug(text, safe);
  };
}
