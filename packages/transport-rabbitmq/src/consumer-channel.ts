import type { Channel, ConsumeMessage } from 'amqplib';

/**
 * A consumer channel and the settlement of its deliveries. Acks are coalesced: once per event
 * loop pass, written with the pass's publishes, the longest run of settled deliveries from the
 * oldest unsettled one is acked with a single `multiple` ack (one broker command instead of one
 * per message); completed deliveries behind a gap are acked one by one so they do not hold
 * prefetch slots. Requeues (`nack`) go out at once, singly, so `multiple` never covers a message
 * that was not completed.
 */
export class ConsumerChannel {
  /** False once the channel is closed: its deliveries can no longer be settled (the broker redelivers them). */
  open = true;
  /** Consumers were cancelled (stopping): late deliveries go straight back. */
  cancelled = false;
  consumerTags: string[] = [];
  /** Delivery tags in order of delivery, from `head` on not yet covered by an ack. */
  private unsettled: number[] = [];
  private head = 0;
  /** Completed, awaiting the next flush. */
  private readonly completed = new Set<number>();
  /** Settled singly (requeued, or acked behind a gap); skipped when the run advances. */
  private readonly settledSingly = new Set<number>();
  private readonly flushOnce = () => this.flush();

  /** `defer` runs the flush once at the end of the pass (`WriteBatch`), with the pass's publishes. */
  constructor(
    readonly channel: Channel,
    private readonly defer: (work: () => void) => void,
  ) {}

  delivered(message: ConsumeMessage): void {
    this.unsettled.push(message.fields.deliveryTag);
  }

  complete(message: ConsumeMessage): void {
    if (!this.open) return;
    this.completed.add(message.fields.deliveryTag);
    this.defer(this.flushOnce);
  }

  requeue(message: ConsumeMessage): void {
    if (!this.open) return;
    this.settledSingly.add(message.fields.deliveryTag);
    this.send(() => this.channel.nack(message, false, true));
  }

  /** Acks everything completed so far. Also called before the channel is closed. */
  flush(): void {
    if (!this.open || this.completed.size === 0) return;
    let ackUpTo = -1;
    const unsettled = this.unsettled;
    while (this.head < unsettled.length) {
      const tag = unsettled[this.head] as number;
      if (this.completed.delete(tag)) ackUpTo = tag;
      else if (!this.settledSingly.delete(tag)) break;
      this.head++;
    }
    if (ackUpTo >= 0) this.send(() => this.channel.ack(tagged(ackUpTo), true));
    for (const tag of this.completed) {
      this.settledSingly.add(tag);
      this.send(() => this.channel.ack(tagged(tag), false));
    }
    this.completed.clear();
    if (this.head > 1024 && this.head * 2 > unsettled.length) {
      this.unsettled = unsettled.slice(this.head);
      this.head = 0;
    }
  }

  private send(settle: () => void): void {
    try {
      settle();
    } catch {
      // Closed under us: the broker redelivers the message.
    }
  }
}

/** amqplib settles by `fields.deliveryTag` alone. */
function tagged(deliveryTag: number): ConsumeMessage {
  return { fields: { deliveryTag } } as ConsumeMessage;
}
