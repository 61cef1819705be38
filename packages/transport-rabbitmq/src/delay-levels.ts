/**
 * Delayed delivery without broker plugins, after NServiceBus's RabbitMQ transport: 28 delay
 * levels, level L holding messages for 2^L seconds. A delay of S seconds is written in binary
 * into the routing key, one word per level from the highest down, then the destination queue:
 * `0.0. ... 1.0.1.Sales`. Each level's topic exchange sends the message into its level queue
 * when its bit is 1 (the queue's TTL is the wait, its dead-letter exchange the next level down)
 * or straight on to the next level when it is 0. After level 0 the delivery exchange routes the
 * message to the queue named after the 28 bit words. So every delay up to 2^28 - 1 seconds
 * (about 8.5 years) is exact to the second, and each level queue holds one TTL, so messages
 * expire at its head in order.
 */
export const DELAY_LEVELS = 28;
export const MAX_DELAY_SECONDS = 2 ** DELAY_LEVELS - 1;
export const DELAY_DELIVERY_EXCHANGE = 'tidings.delay-delivery';

export function delayLevelName(level: number): string {
  return `tidings.delay-level-${String(level).padStart(2, '0')}`;
}

/** Delays are rounded up to whole seconds: never early. */
export function delaySeconds(delayMs: number): number {
  return Math.ceil(delayMs / 1000);
}

/** The routing key that carries `seconds` in binary, highest level first, then the queue. */
export function delayRoutingKey(seconds: number, queue: string): string {
  let key = '';
  for (let level = DELAY_LEVELS - 1; level >= 0; level--) {
    key += Math.floor(seconds / 2 ** level) % 2 === 1 ? '1.' : '0.';
  }
  return key + queue;
}

/** The level exchange to publish to: the highest set bit (all higher levels would pass it on). */
export function firstDelayLevel(seconds: number): number {
  return Math.floor(Math.log2(seconds));
}

/** Pattern matching the bit word of `level` when it equals `bit`. */
export function levelPattern(level: number, bit: 0 | 1): string {
  return `${'*.'.repeat(DELAY_LEVELS - 1 - level)}${bit}.#`;
}

/** Binding of a destination queue to the delivery exchange: exactly 28 bit words, then its name. */
export function deliveryPattern(queue: string): string {
  return `${'*.'.repeat(DELAY_LEVELS)}${queue}`;
}

/** Everything to declare, in order, for the delay levels to work. */
export interface DelayTopology {
  readonly exchanges: readonly string[];
  readonly queues: ReadonlyArray<{ name: string; ttlMs: number; deadLetterExchange: string }>;
  readonly queueBindings: ReadonlyArray<{ queue: string; exchange: string; pattern: string }>;
  readonly exchangeBindings: ReadonlyArray<{
    destination: string;
    source: string;
    pattern: string;
  }>;
}

export function delayTopology(): DelayTopology {
  const exchanges = [DELAY_DELIVERY_EXCHANGE];
  const queues: Array<{ name: string; ttlMs: number; deadLetterExchange: string }> = [];
  const queueBindings: Array<{ queue: string; exchange: string; pattern: string }> = [];
  const exchangeBindings: Array<{ destination: string; source: string; pattern: string }> = [];
  for (let level = 0; level < DELAY_LEVELS; level++) {
    const name = delayLevelName(level);
    const next = level === 0 ? DELAY_DELIVERY_EXCHANGE : delayLevelName(level - 1);
    exchanges.push(name);
    queues.push({ name, ttlMs: 2 ** level * 1000, deadLetterExchange: next });
    queueBindings.push({ queue: name, exchange: name, pattern: levelPattern(level, 1) });
    exchangeBindings.push({ destination: next, source: name, pattern: levelPattern(level, 0) });
  }
  return { exchanges, queues, queueBindings, exchangeBindings };
}
