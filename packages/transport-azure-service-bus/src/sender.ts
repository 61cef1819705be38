import type { ServiceBusClient, ServiceBusSender } from '@azure/service-bus';
import { Headers, type Logger, MessageTooLargeError } from '@tidings/core';
import type { TransportOperation } from '@tidings/core/transport';
import type { FailWith } from './errors.js';
import { topicName } from './naming.js';
import type { ResolvedAzureServiceBusOptions } from './options.js';
import { toCheckedServiceBusMessage } from './property-limits.js';

export const TRANSPORT_NAME = 'azure-service-bus';

/** A message that fits in no batch of `limit` bytes. */
const tooLarge = (operation: TransportOperation, limit: number) =>
  new MessageTooLargeError(
    operation.message.headers[Headers.MessageType] ?? operation.message.messageId,
    operation.message.body.byteLength,
    limit,
    TRANSPORT_NAME,
  );

/** Generous bound on what AMQP encoding adds to body plus headers (sections, descriptors, ids). */
const ENCODING_HEADROOM_BYTES = 16 * 1024;

/**
 * The most bytes body, id and headers can take: characters are counted at six bytes each, what a
 * control character or a lone surrogate takes in the packed bus headers' JSON (`\uXXXX`; UTF-8
 * alone takes at most three), as counting bytes costs more and only matters near the limit.
 */
function sizeAtMost(operation: TransportOperation): number {
  let units = operation.message.messageId.length;
  for (const name in operation.message.headers) {
    units += name.length + (operation.message.headers[name] as string).length;
  }
  return operation.message.body.byteLength + 6 * units;
}

const entityOf = (destination: TransportOperation['destination']) =>
  destination.kind === 'queue' ? destination.queue : topicName(destination.messageType);

interface CachedSender {
  sender: ServiceBusSender;
  inUse: number;
  /** Out of the cache (its destination was not found): closed once no send uses it. */
  dropped: boolean;
  /** Below this a single message is sent without a batch; set on the first send. */
  directLimit: number | undefined;
}

/**
 * Sends one endpoint's outgoing operations over its client: senders (AMQP links) cached per
 * destination, the most recently used last, each with the sends using it now; a message sent
 * alone where it is well under the limit, else in as few batches as fit.
 */
export class Sender {
  private readonly senders = new Map<string, CachedSender>();
  /** Below this, AMQP framing cannot push a message over the limit; above it, a batch measures it. */
  private readonly directSendLimit: number;
  private readonly maxCachedSenders: number;

  constructor(
    private readonly client: ServiceBusClient,
    options: ResolvedAzureServiceBusOptions,
    private readonly logger: Logger,
    private readonly fail: FailWith,
  ) {
    this.directSendLimit = options.maxMessageSizeBytes - ENCODING_HEADROOM_BYTES;
    this.maxCachedSenders = options.maxCachedSenders;
  }

  async dispatch(operations: readonly TransportOperation[]): Promise<void> {
    // One message (every send, reply and publish outside a handler): no grouping.
    if (operations.length === 1) {
      const { destination } = operations[0] as TransportOperation;
      return this.sendGroup(entityOf(destination), destination.kind === 'publish', operations);
    }
    const byEntity = new Map<string, { publish: boolean; operations: TransportOperation[] }>();
    for (const operation of operations) {
      const entity = entityOf(operation.destination);
      let group = byEntity.get(entity);
      if (group === undefined) {
        group = { publish: operation.destination.kind === 'publish', operations: [] };
        byEntity.set(entity, group);
      }
      group.operations.push(operation);
    }
    await Promise.all(
      [...byEntity].map(([entity, group]) =>
        this.sendGroup(entity, group.publish, group.operations),
      ),
    );
  }

  /** Closes every sender; sends still using one fail. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.senders.values()].map((s) => s.sender.close()));
    this.senders.clear();
  }

  /** Sends one destination's operations; errors mapped, a publish with no topic dropped. */
  private async sendGroup(
    entity: string,
    publish: boolean,
    operations: readonly TransportOperation[],
  ): Promise<void> {
    const cached = this.take(entity);
    try {
      await this.sendTo(cached, operations);
    } catch (error) {
      const mapped = this.fail(error, `send to '${entity}'`, entity);
      if (mapped.code === 'TIDINGS_DESTINATION_NOT_FOUND') {
        this.drop(entity, cached);
        // No topic means no subscriber has ever subscribed: nobody to deliver to.
        if (publish) {
          this.logger.debug(`No subscribers for '${entity}' (topic does not exist)`);
          return;
        }
      }
      throw mapped;
    } finally {
      this.release(cached);
    }
  }

  /** Sends one destination's messages in as few batches as fit; a message that fits in none is refused. */
  private async sendTo(
    cached: CachedSender,
    operations: readonly TransportOperation[],
  ): Promise<void> {
    const sender = cached.sender;
    if (cached.directLimit === undefined) {
      // The entity's own limit, advertised on the link (256 KiB on Standard whatever
      // maxMessageSizeBytes says): the SDK does not check a single send against it, so the
      // direct path stays below it too, and a larger message is measured by a batch and
      // refused with MessageTooLargeError instead of failing at the service.
      const probe = await sender.createMessageBatch();
      cached.directLimit = Math.min(
        this.directSendLimit,
        probe.maxSizeInBytes - ENCODING_HEADROOM_BYTES,
      );
    }
    const [only] = operations;
    if (operations.length === 1 && only !== undefined && sizeAtMost(only) < cached.directLimit) {
      // Well under the limit (core checked body plus headers): skip the batch envelope.
      await sender.sendMessages(
        toCheckedServiceBusMessage(only.message, only.delayMs, only.copyOf),
      );
      return;
    }
    let batch = await sender.createMessageBatch();
    for (const operation of operations) {
      const message = toCheckedServiceBusMessage(
        operation.message,
        operation.delayMs,
        operation.copyOf,
      );
      if (batch.tryAddMessage(message)) continue;
      if (batch.count === 0) throw tooLarge(operation, batch.maxSizeInBytes);
      await sender.sendMessages(batch);
      batch = await sender.createMessageBatch();
      if (!batch.tryAddMessage(message)) throw tooLarge(operation, batch.maxSizeInBytes);
    }
    if (batch.count > 0) await sender.sendMessages(batch);
  }

  /** The destination's sender, marked in use until `release`. */
  private take(entity: string): CachedSender {
    let cached = this.senders.get(entity);
    if (cached === undefined) {
      if (this.senders.size >= this.maxCachedSenders) this.closeIdle();
      cached = {
        sender: this.client.createSender(entity),
        inUse: 0,
        dropped: false,
        directLimit: undefined,
      };
    } else {
      this.senders.delete(entity);
    }
    this.senders.set(entity, cached);
    cached.inUse++;
    return cached;
  }

  private release(cached: CachedSender): void {
    cached.inUse--;
    if (cached.dropped && cached.inUse === 0) cached.sender.close().catch(() => {});
  }

  /** Closes the least recently used senders no send is using, down to below the limit. */
  private closeIdle(): void {
    for (const [entity, cached] of this.senders) {
      if (this.senders.size < this.maxCachedSenders) return;
      if (cached.inUse > 0) continue;
      this.senders.delete(entity);
      cached.sender.close().catch(() => {});
    }
  }

  /**
   * Takes a sender whose destination was not found out of the cache, so the next send attaches
   * anew; closing it waits for the sends that took it too, which a closed sender would fail
   * with an error of its own instead of their not-found.
   */
  private drop(entity: string, cached: CachedSender): void {
    if (this.senders.get(entity) === cached) this.senders.delete(entity);
    cached.dropped = true;
  }
}
