import { checkWholeNumber } from '../configuration/option-checks.js';

export interface OutboxOptions {
  /**
   * How long a dispatched record is kept: a copy of the message redelivered within this time is
   * recognised and dropped. Longer than the broker can hold a message back (delays, redelivery).
   * @default 604_800_000 (7 days)
   */
  readonly retentionMs?: number;
  /**
   * How often dispatched records past `retentionMs` are deleted.
   * @default 3_600_000 (1 hour)
   */
  readonly cleanupIntervalMs?: number;
  /**
   * How often the background dispatcher looks for records whose messages did not leave (the
   * process died between commit and dispatch, or the broker refused the dispatch).
   * @default 10_000
   */
  readonly dispatchIntervalMs?: number;
  /**
   * A record this old and not dispatched is the dispatcher's: younger ones are still being
   * dispatched by the instance that committed them.
   * @default 30_000
   */
  readonly dispatchAfterMs?: number;
}

export const outboxDefaults = {
  retentionMs: 7 * 24 * 60 * 60 * 1000,
  cleanupIntervalMs: 60 * 60 * 1000,
  dispatchIntervalMs: 10_000,
  dispatchAfterMs: 30_000,
} as const;

export type ResolvedOutboxOptions = { readonly [K in keyof typeof outboxDefaults]: number };

export function resolveOutboxOptions(options: OutboxOptions | undefined): ResolvedOutboxOptions {
  const pick = (name: keyof typeof outboxDefaults, min = 1) =>
    checkWholeNumber(`outbox.${name}`, options?.[name] ?? outboxDefaults[name], min);
  return {
    retentionMs: pick('retentionMs'),
    cleanupIntervalMs: pick('cleanupIntervalMs'),
    dispatchIntervalMs: pick('dispatchIntervalMs'),
    dispatchAfterMs: pick('dispatchAfterMs', 0),
  };
}
