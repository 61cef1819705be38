import type { Channel, ConsumeMessage } from 'amqplib';

/**
 * A consumer channel and the settlement of its deliveries. Acks are coalesced: once per event
 * loop pass, written with the pass's publishes, the longest run of settled deliveries from the
 * oldest unsettled one is acked with a single `multiple` ack (one broker command instead of one
 * per message); completed deliveries behind a gap are acked one by one so they do not hold
 * prefetch slots. Requeues (`nack`) go out at once, singly, so `multiple` never covers a message
 * that was not completed.
 *
 * Deliveries completed `lazily` (the instance queue's replies) do not ask for a flush of their
 * own: they are acked with the next flush, once `lazyLimit` of them wait, or `LAZY_ACK_MS` after
 * the first, so a reply per round trip costs no ack frame of its own. They stay unacked a little
 * longer: a connection lost meanwhile brings them again, and they go where any reply after its
 * callback goes (the endpoint's handlers, or counted and dropped).
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
  /** Completed lazily since the last flush. */
  private lazy = 0;
  /** Set while lazily completed deliveries wait for their flush; not cleared by a flush. */
  private lazyTimer: NodeJS.Timeout | undefined;
  private readonly lazyDue = () => {
    this.lazyTimer = undefined;
    if (this.lazy > 0) this.defer(this.flushOnce);
  };

  /**
   * `defer` runs the flush once at the end of the pass (`WriteBatch`), with the pass's publishes.
   * `lazyLimit`: lazily completed deliveries that make a flush due (keep it below the prefetch).
   */
  constructor(
    readonly channel: Channel,
    private readonly defer: (work: () => void) => void,
    private readonly lazyLimit = 1,
  ) {}

  delivered(message: ConsumeMessage): void {
    this.unsettled.push(message.fields.deliveryTag);
  }

  complete(message: ConsumeMessage, lazily = false): void {
    if (!this.open) return;
    this.completed.add(message.fields.deliveryTag);
    if (!lazily || ++this.lazy >= this.lazyLimit) {
      this.defer(this.flushOnce);
    } else if (this.lazyTimer === undefined) {
      // One timer per window, not per delivery; it keeps no process alive.
      this.lazyTimer = setTimeout(this.lazyDue, LAZY_ACK_MS);
      this.lazyTimer.unref();
    }
  }

  requeue(message: ConsumeMessage): void {
    if (!this.open) return;
    this.settledSingly.add(message.fields.deliveryTag);
    this.send(() => this.channel.nack(message, false, true));
  }

  /** Acks everything completed so far. Also called before the channel is closed. */
  flush(): void {
    if (!this.open || this.completed.size === 0) return;
    this.lazy = 0;
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

/** The longest a lazily completed delivery waits for its ack. */
export const LAZY_ACK_MS = 50;

/** amqplib settles by `fields.deliveryTag` alone. */
function tagged(deliveryTag: number): ConsumeMessage {
  return { fields: { deliveryTag } } as ConsumeMessage;
}
