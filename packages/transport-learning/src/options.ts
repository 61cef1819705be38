import { ConfigurationError, checkWholeNumber } from '@tidings/core';
import { checkTimerMs } from '@tidings/core/transport';

export interface LearningTransportOptions {
  /**
   * The directory that holds every queue, delayed message and subscription. Processes that share
   * it talk to each other; relative paths resolve against the working directory.
   * @default '.tidings' (in `process.cwd()`)
   */
  readonly rootDir?: string;
  /**
   * How often a receiver looks at its queues when the file-system watcher says nothing. The watcher
   * usually wakes it within a millisecond; this bounds the wait when it misses an event.
   * @default 50
   */
  readonly pollIntervalMs?: number;
  /**
   * How often housekeeping runs in a receiving process: moves due delayed messages into their
   * queues, takes back messages claimed by processes that died, refreshes this process's heartbeat.
   * It is the granularity of delayed delivery and of crash recovery.
   * @default 250
   */
  readonly housekeepingIntervalMs?: number;
  /**
   * A receiver whose heartbeat is older than this loses its claimed messages to other receivers,
   * even if its process id still exists (a hung event loop, or a reused process id). A dead
   * process id loses them at once.
   * @default 30_000
   */
  readonly leaseMs?: number;
  /**
   * An instance queue (where replies to one instance arrive) that no receiver has touched for this
   * long is deleted with whatever it holds, by the next receiver that looks.
   * @default 3_600_000 (1 hour)
   */
  readonly instanceQueueExpiryMs?: number;
  /**
   * Largest message accepted, body plus headers, in bytes.
   * @default 4_194_304 (4 MiB)
   */
  readonly maxMessageSizeBytes?: number;
  /**
   * fsync each message file before it becomes visible. Off, a power loss may lose messages that
   * were acknowledged; a process crash never does.
   * @default false
   */
  readonly fsync?: boolean;
}

export const learningTransportDefaults = {
  rootDir: '.tidings',
  pollIntervalMs: 50,
  housekeepingIntervalMs: 250,
  leaseMs: 30_000,
  instanceQueueExpiryMs: 3_600_000,
  maxMessageSizeBytes: 4 * 1024 * 1024,
  fsync: false,
} as const satisfies Required<LearningTransportOptions>;

/** The options with defaults applied and every value checked. */
export type ResolvedLearningOptions = {
  -readonly [K in keyof Required<LearningTransportOptions>]: Required<LearningTransportOptions>[K];
};

/**
 * Applies `learningTransportDefaults` and checks every value, and how they relate (the lease
 * against the housekeeping interval, the instance queue expiry against the lease): a bad value is
 * a `ConfigurationError` when the transport is created.
 */
export function resolveLearningOptions(options: LearningTransportOptions): ResolvedLearningOptions {
  const rootDir = options.rootDir ?? learningTransportDefaults.rootDir;
  if (typeof rootDir !== 'string' || rootDir.length === 0) {
    throw new ConfigurationError(
      `rootDir must be a non-empty path, got ${JSON.stringify(rootDir)}.`,
    );
  }
  const resolved: ResolvedLearningOptions = {
    rootDir,
    pollIntervalMs: checkTimerMs(
      'pollIntervalMs',
      options.pollIntervalMs ?? learningTransportDefaults.pollIntervalMs,
    ),
    housekeepingIntervalMs: checkTimerMs(
      'housekeepingIntervalMs',
      options.housekeepingIntervalMs ?? learningTransportDefaults.housekeepingIntervalMs,
    ),
    leaseMs: checkWholeNumber('leaseMs', options.leaseMs ?? learningTransportDefaults.leaseMs),
    instanceQueueExpiryMs: checkWholeNumber(
      'instanceQueueExpiryMs',
      options.instanceQueueExpiryMs ?? learningTransportDefaults.instanceQueueExpiryMs,
    ),
    maxMessageSizeBytes: checkWholeNumber(
      'maxMessageSizeBytes',
      options.maxMessageSizeBytes ?? learningTransportDefaults.maxMessageSizeBytes,
    ),
    fsync: options.fsync ?? learningTransportDefaults.fsync,
  };
  if (resolved.leaseMs < resolved.housekeepingIntervalMs * 4) {
    throw new ConfigurationError(
      `leaseMs (${resolved.leaseMs}) must be at least 4 × housekeepingIntervalMs (${resolved.housekeepingIntervalMs}), or live receivers would lose their messages between heartbeats.`,
    );
  }
  if (resolved.instanceQueueExpiryMs < resolved.leaseMs) {
    throw new ConfigurationError(
      `instanceQueueExpiryMs (${resolved.instanceQueueExpiryMs}) must be at least leaseMs (${resolved.leaseMs}): live instance queues are touched once per lease.`,
    );
  }
  return resolved;
}
