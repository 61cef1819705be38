import type { Logger } from '@tidings/core';
import { mapKafkaError } from './errors.js';
import type { ClientConsumer, KafkaClient } from './kafka-client.js';

export interface PartitionPosition {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/**
 * Where a new subscription starts: the end of the event topic when it was made, so the endpoint
 * gets every event published from then on, even before its group has joined (which takes seconds).
 * Recorded for the group right away where the cluster allows it (no member running yet); otherwise
 * kept here and applied at the consumer's joins until the group has a position there.
 */
export class SubscriptionAnchors {
  /** Offsets by partition, by event topic, not yet recorded for the group. */
  private readonly anchors = new Map<string, Map<number, string>>();

  constructor(
    private readonly kafka: KafkaClient,
    /** The endpoint's group (named after its input topic). */
    private readonly groupId: string,
    private readonly logger: Logger,
    private readonly secrets: readonly (string | undefined)[],
  ) {}

  /** Reads where a subscription to `topic` starts, for partitions the group has no position in. */
  async anchor(topic: string): Promise<void> {
    const { kafka, groupId } = this;
    try {
      const committed = await kafka.committedOffsets(groupId, topic);
      const ends = await kafka.endOffsets(topic);
      const anchor = new Map<number, string>();
      for (const [partition, end] of ends) {
        if (committed.get(partition) === undefined) anchor.set(partition, end);
      }
      if (anchor.size === 0) return;
      const recorded = await kafka.setGroupOffsets(groupId, topic, anchor).then(
        () => true,
        () => false,
      );
      if (!recorded) this.anchors.set(topic, anchor);
    } catch (error) {
      throw mapKafkaError(error, {
        operation: `read positions of ${topic}`,
        secrets: this.secrets,
      });
    }
  }

  /** The anchors of an assignment's partitions still to be applied. */
  within(assignment: Readonly<Record<string, readonly number[]>>): PartitionPosition[] {
    const anchored: PartitionPosition[] = [];
    for (const [topic, assigned] of Object.entries(assignment)) {
      const anchor = this.anchors.get(topic);
      if (anchor === undefined) continue;
      for (const partition of assigned) {
        const offset = anchor.get(partition);
        if (offset !== undefined) anchored.push({ topic, partition, offset });
      }
    }
    return anchored;
  }

  /**
   * Starts the consumer at the anchors of a join. Another member may have joined first and
   * committed since (and handled events past it, or not yet up to it): the group's position wins.
   * So the partitions are held (`resume` lets them go) while the group's positions are read. An
   * anchor goes once the group has a position there; until then the next join (this consumer's, or
   * the next one's after a subscription change) applies it again.
   */
  startAt(
    anchored: readonly PartitionPosition[],
    consumer: ClientConsumer,
    seek: (topic: string, partition: number, offset: string) => void,
    resume: () => void,
    /** False once the group rejoined: these partitions may be another member's now. */
    stillJoined: () => boolean,
  ): void {
    const settled = (topic: string, partition: number) =>
      this.anchors.get(topic)?.delete(partition);
    void this.groupPositions(anchored)
      // Positions unknown (the cluster did not answer): the anchors, as read.
      .catch(() => new Map<string, Map<number, string | undefined>>())
      .then((committed) => {
        if (!stillJoined()) return resume();
        const positions: PartitionPosition[] = [];
        try {
          for (const { topic, partition, offset } of anchored) {
            const groupOffset = committed.get(topic)?.get(partition);
            seek(topic, partition, groupOffset ?? offset);
            if (groupOffset === undefined) positions.push({ topic, partition, offset });
            else settled(topic, partition);
          }
        } catch {
          // The consumer stopped meanwhile: nothing to read from.
          return resume();
        }
        if (positions.length === 0) return resume();
        // Durable, so events published while this process is down are not skipped when it
        // comes back before handling any. Made before the partitions are let go: a stop
        // waits for both.
        const committing = consumer.commit(positions);
        resume();
        committing.then(
          () => {
            for (const { topic, partition } of positions) settled(topic, partition);
          },
          (error: unknown) => {
            this.logger.warn('Could not record where a new subscription starts', {
              error: error instanceof Error ? error.message : String(error),
            });
          },
        );
      });
  }

  private async groupPositions(
    anchored: readonly PartitionPosition[],
  ): Promise<Map<string, Map<number, string | undefined>>> {
    const committed = new Map<string, Map<number, string | undefined>>();
    for (const topic of new Set(anchored.map((a) => a.topic))) {
      committed.set(topic, await this.kafka.committedOffsets(this.groupId, topic));
    }
    return committed;
  }
}
