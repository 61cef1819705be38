import { ConfigurationError, checkWholeNumber } from '@tidings/core';
import { checkTimerMs } from '@tidings/core/transport';

/** TLS material for `amqps://` URLs. Plain data, so no broker SDK type leaks into the API. */
export interface RabbitMqTlsOptions {
  /** Certificate authorities to trust (PEM). @default the system's */
  readonly ca?: string | Buffer | ReadonlyArray<string | Buffer>;
  /** Client certificate (PEM), for mutual TLS. @default none */
  readonly cert?: string | Buffer;
  /** Client private key (PEM), for mutual TLS. @default none */
  readonly key?: string | Buffer;
  /** Passphrase of `key`. Never logged. @default none */
  readonly passphrase?: string;
  /** Host name to verify the certificate against. @default the URL's host */
  readonly servername?: string;
  /** Refuse brokers whose certificate does not verify. @default true */
  readonly rejectUnauthorized?: boolean;
}

export type RabbitMqQueueType = 'quorum' | 'classic';

/**
 * The order in which an endpoint tries the nodes of `urls`: `'in-order'` starts with the first,
 * `'shuffled'` shuffles the list once per endpoint (spreading endpoints over the nodes). Either
 * way a lost connection moves on to the node after the one lost, wrapping around.
 */
export type RabbitMqNodeOrder = 'in-order' | 'shuffled';

export interface RabbitMqTransportOptions {
  /**
   * Broker URL, `amqp://user:pass@host:5672/vhost` or `amqps://...` for TLS. The password never
   * appears in logs or errors. Give `url` or `urls`, not both.
   */
  readonly url?: string;
  /**
   * The nodes of a cluster, one URL each (same forms as `url`; each may carry its own
   * credentials). An endpoint connects to the first that answers, in `nodeOrder`; when its
   * connection is lost it reconnects to the next reachable node at once, and backs off
   * (`reconnectInitialDelayMs`) only after every node has refused.
   */
  readonly urls?: readonly string[];
  /** @default 'in-order' */
  readonly nodeOrder?: RabbitMqNodeOrder;
  /**
   * Type of the endpoint and error queues. Quorum queues are replicated and report delivery
   * counts; classic queues suit single-node brokers that must stay small.
   * @default 'quorum'
   */
  readonly queueType?: RabbitMqQueueType;
  /**
   * Replicas of each new quorum queue (`x-quorum-initial-group-size`). Unset: the broker's
   * default (`quorum_cluster_size`, 3 nodes unless configured). Ignored for an existing queue.
   * @default undefined (the broker's default)
   */
  readonly quorumInitialGroupSize?: number;
  /**
   * An instance queue (where replies to this instance's requests arrive) is deleted by the broker
   * once nobody has consumed it for this long (`x-expires`).
   * @default 600_000 (10 minutes)
   */
  readonly instanceQueueExpiresMs?: number;
  /**
   * Requests that only an in-memory callback waits for (`request()`, `register()`) travel
   * transient (delivery mode 1) but confirmed: a lost connection sends them again, a broker
   * restart loses them from a classic queue (a quorum queue writes every message to its log
   * anyway). True: they are persistent, as a plain `send` is, and survive a restart of a classic
   * queue's broker. See docs/adr/0013-durability-by-purpose.md.
   * @default false
   */
  readonly persistentCallbackRequests?: boolean;
  /**
   * Largest message, body plus headers, in bytes; core refuses larger ones before sending.
   * RabbitMQ itself accepts up to 128 MiB, but large messages stall every other message on the
   * connection: send a reference instead.
   * @default 4_194_304 (4 MiB)
   */
  readonly maxMessageSizeBytes?: number;
  /**
   * Delayed delivery (delayed retries, `delayMs` sends) through TTL and dead-letter delay levels.
   * Off: the transport declares no delay capability and core moves failures straight on.
   * @default true
   */
  readonly delayedDelivery?: boolean;
  /**
   * Unacknowledged messages the broker pushes to each consumer, as a multiple of the endpoint's
   * concurrency (per consumer, never global). Above 1, the next message is already here when a
   * handler finishes.
   * @default 2
   */
  readonly prefetchMultiplier?: number;
  /**
   * AMQP heartbeat: a silent broker is taken as gone after about twice this.
   * @default 10
   */
  readonly heartbeatSeconds?: number;
  /**
   * First wait before reconnecting after the connection or a channel is lost; doubles per
   * failed attempt up to `reconnectMaxDelayMs`.
   * @default 100
   */
  readonly reconnectInitialDelayMs?: number;
  /** @default 5_000 */
  readonly reconnectMaxDelayMs?: number;
  /**
   * How long a send waits for the broker (reconnecting, re-sending after a lost confirm) before it
   * rejects with `TransportUnavailableError`.
   * @default 30_000
   */
  readonly unavailableTimeoutMs?: number;
  /** TLS settings for `amqps://` URLs. @default none (system CAs, verification on) */
  readonly tls?: RabbitMqTlsOptions;
  /**
   * Shown in the broker's management UI as the connection name, followed by the endpoint name.
   * @default 'tidings'
   */
  readonly connectionName?: string;
}

export const rabbitMqTransportDefaults = {
  queueType: 'quorum',
  instanceQueueExpiresMs: 600_000,
  persistentCallbackRequests: false,
  maxMessageSizeBytes: 4 * 1024 * 1024,
  delayedDelivery: true,
  prefetchMultiplier: 2,
  heartbeatSeconds: 10,
  reconnectInitialDelayMs: 100,
  reconnectMaxDelayMs: 5_000,
  unavailableTimeoutMs: 30_000,
  connectionName: 'tidings',
  nodeOrder: 'in-order',
} as const satisfies Required<
  Omit<RabbitMqTransportOptions, 'url' | 'urls' | 'tls' | 'quorumInitialGroupSize'>
>;

/** Options with defaults applied and checked. */
export interface ResolvedRabbitMqOptions
  extends Required<
    Omit<
      RabbitMqTransportOptions,
      'url' | 'urls' | 'tls' | 'queueType' | 'nodeOrder' | 'quorumInitialGroupSize'
    >
  > {
  /** One URL per node, at least one. */
  readonly urls: readonly string[];
  readonly nodeOrder: RabbitMqNodeOrder;
  readonly queueType: RabbitMqQueueType;
  readonly quorumInitialGroupSize: number | undefined;
  readonly tls: RabbitMqTlsOptions | undefined;
}

const positiveInteger = (name: string, value: number) =>
  checkWholeNumber(`RabbitMQ: ${name}`, value);
/** An option that becomes one timer: at most `MAX_TIMER_MS`, which Node.js would fire at once. */
const timerMs = (name: string, value: number) => checkTimerMs(`RabbitMQ: ${name}`, value);

function resolveUrls(options: RabbitMqTransportOptions): readonly string[] {
  const example =
    'e.g. createRabbitMqTransport({ url: "amqp://user:pass@localhost:5672" }), or urls: [...] with one URL per cluster node.';
  if (options === undefined || (options.url === undefined && options.urls === undefined)) {
    throw new ConfigurationError(`RabbitMQ: \`url\` or \`urls\` is required, ${example}`);
  }
  if (options.url !== undefined && options.urls !== undefined) {
    throw new ConfigurationError(`RabbitMQ: give \`url\` or \`urls\`, not both; ${example}`);
  }
  const urls = options.urls ?? [options.url];
  if (
    !Array.isArray(urls) ||
    urls.length === 0 ||
    urls.some((url) => typeof url !== 'string' || url === '')
  ) {
    throw new ConfigurationError(
      `RabbitMQ: \`url\` must be a non-empty string and \`urls\` a non-empty list of them, ${example}`,
    );
  }
  return urls as readonly string[];
}

/** Applies the defaults to `options` and checks every value; bad input throws `ConfigurationError`. */
export function resolveRabbitMqOptions(options: RabbitMqTransportOptions): ResolvedRabbitMqOptions {
  const urls = resolveUrls(options);
  const d = rabbitMqTransportDefaults;
  const queueType = options.queueType ?? d.queueType;
  if (queueType !== 'quorum' && queueType !== 'classic') {
    throw new ConfigurationError(
      `RabbitMQ: queueType must be 'quorum' or 'classic', got '${String(queueType)}'.`,
    );
  }
  const nodeOrder = options.nodeOrder ?? d.nodeOrder;
  if (nodeOrder !== 'in-order' && nodeOrder !== 'shuffled') {
    throw new ConfigurationError(
      `RabbitMQ: nodeOrder must be 'in-order' or 'shuffled', got '${String(nodeOrder)}'.`,
    );
  }
  const prefetchMultiplier = options.prefetchMultiplier ?? d.prefetchMultiplier;
  if (!(prefetchMultiplier >= 1) || !Number.isFinite(prefetchMultiplier)) {
    throw new ConfigurationError(
      `RabbitMQ: prefetchMultiplier must be a number of at least 1, got ${prefetchMultiplier}.`,
    );
  }
  const reconnectInitialDelayMs = timerMs(
    'reconnectInitialDelayMs',
    options.reconnectInitialDelayMs ?? d.reconnectInitialDelayMs,
  );
  return {
    urls,
    nodeOrder,
    queueType,
    quorumInitialGroupSize:
      options.quorumInitialGroupSize === undefined
        ? undefined
        : positiveInteger('quorumInitialGroupSize', options.quorumInitialGroupSize),
    instanceQueueExpiresMs: positiveInteger(
      'instanceQueueExpiresMs',
      options.instanceQueueExpiresMs ?? d.instanceQueueExpiresMs,
    ),
    maxMessageSizeBytes: positiveInteger(
      'maxMessageSizeBytes',
      options.maxMessageSizeBytes ?? d.maxMessageSizeBytes,
    ),
    delayedDelivery: options.delayedDelivery ?? d.delayedDelivery,
    persistentCallbackRequests: options.persistentCallbackRequests ?? d.persistentCallbackRequests,
    prefetchMultiplier,
    heartbeatSeconds: positiveInteger(
      'heartbeatSeconds',
      options.heartbeatSeconds ?? d.heartbeatSeconds,
    ),
    reconnectInitialDelayMs,
    reconnectMaxDelayMs: Math.max(
      reconnectInitialDelayMs,
      timerMs('reconnectMaxDelayMs', options.reconnectMaxDelayMs ?? d.reconnectMaxDelayMs),
    ),
    unavailableTimeoutMs: timerMs(
      'unavailableTimeoutMs',
      options.unavailableTimeoutMs ?? d.unavailableTimeoutMs,
    ),
    tls: options.tls,
    connectionName: options.connectionName ?? d.connectionName,
  };
}
