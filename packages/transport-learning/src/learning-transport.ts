import { resolve } from 'node:path';
import type { Logger, Transport, TransportCapabilities } from '@tidings/core';
import {
  type EndpointTopology,
  TRANSPORT_SPI_VERSION,
  type TransportContext,
  type TransportEndpoint,
} from '@tidings/core/transport';
import { newOwnerId } from './file-names.js';
import { FileStore } from './file-store.js';
import { Housekeeping } from './housekeeping.js';
import { LearningEndpoint, type LearningEndpointHost } from './learning-endpoint.js';
import { type LearningTransportOptions, resolveLearningOptions } from './options.js';
import { MAX_DELAY_MS, Sender } from './sender.js';

/** The learning transport, plus where it keeps its files. */
export interface LearningTransport extends Transport {
  /** The absolute root directory: one folder per queue. */
  readonly rootDir: string;
}

/**
 * A transport on the local file system, for development and demos: one folder per queue under
 * `rootDir`, one file per message. Processes on one machine that share the folder talk to each
 * other with no broker. Not for production: see the README.
 */
export function createLearningTransport(options: LearningTransportOptions = {}): LearningTransport {
  const settings = resolveLearningOptions(options);
  const rootDir = resolve(settings.rootDir);
  const store = new FileStore(rootDir, settings.fsync);
  const capabilities: TransportCapabilities = {
    delayedDelivery: true,
    nativePublishSubscribe: true,
    maxMessageSizeBytes: settings.maxMessageSizeBytes,
    deliveryCount: true,
    durable: true,
    maxDelayMs: MAX_DELAY_MS,
  };
  /** The first endpoint's logger, for what concerns them all (housekeeping, stale subscribers). */
  let logger: Logger | undefined;
  const currentLogger = () => logger;
  const owner = newOwnerId();
  const host: LearningEndpointHost = {
    store,
    owner,
    pollIntervalMs: settings.pollIntervalMs,
    sender: new Sender(store, currentLogger),
    housekeeping: new Housekeeping(store, owner, settings, currentLogger),
    logger: currentLogger,
  };
  let prepared: Promise<void> | undefined;

  return {
    spiVersion: TRANSPORT_SPI_VERSION,
    name: 'learning',
    capabilities,
    rootDir,

    async openEndpoint(
      topology: EndpointTopology,
      context: TransportContext,
    ): Promise<TransportEndpoint> {
      logger ??= context.logger;
      prepared ??= store.prepare();
      try {
        await prepared;
      } catch (error) {
        prepared = undefined;
        throw error;
      }
      return LearningEndpoint.open(host, topology, context);
    },
  };
}
