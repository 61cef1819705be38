import { ConfigurationError, TidingsError } from '../errors.js';
import { checkQueueName, queueNamePattern } from '../messages/destination-name.js';
import { isInstanceOf, readProperty, readString } from '../thrown-value.js';

/** What to do with a message whose handling failed. */
export type RecoverabilityAction =
  | { readonly kind: 'immediate-retry' }
  | { readonly kind: 'delayed-retry'; readonly delayMs: number }
  | { readonly kind: 'move-to-error'; readonly errorQueue?: string }
  | { readonly kind: 'discard'; readonly reason: string };

export interface FailureInfo {
  readonly error: unknown;
  readonly messageId: string;
  readonly messageType: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Attempts made in this delivery so far (1 after the first failure). */
  readonly immediateAttempts: number;
  /** Delayed retries this message has already been through. */
  readonly delayedRetries: number;
}

/**
 * Decides per failure. Receives the action the configured defaults would take; return it, or
 * another one (e.g. move a non-transient error straight to the error queue).
 */
export type RecoverabilityPolicy = (
  failure: FailureInfo,
  defaultAction: RecoverabilityAction,
) => RecoverabilityAction;

export interface RecoverabilityOptions {
  /**
   * Extra attempts right away, in process, after a failure.
   * @default 5
   */
  readonly immediateRetries?: number;
  /** Rounds of retries after a delay, each followed by its own immediate retries. */
  readonly delayedRetries?: {
    /** @default 3 */
    readonly count?: number;
    /**
     * Delay before round `n` (1-based): a number of ms times `n`, or a function of `n`.
     * @default 10_000 (10 s, 20 s, 30 s)
     */
    readonly delayMs?: number | ((round: number) => number);
  };
  /**
   * Where messages go when retries are exhausted or cannot help.
   * @default 'error'
   */
  readonly errorQueue?: string;
  /**
   * Messages that cannot be read (a body that does not deserialize, no message type): into the
   * broker's own dead-letter queue where the transport has one (`nativeDeadLetter`), with the
   * reason recorded; elsewhere, and with `'error-queue'`, into the error queue.
   * @default 'dead-letter'
   */
  readonly unreadableMessages?: 'dead-letter' | 'error-queue';
  readonly policy?: RecoverabilityPolicy;
}

export const recoverabilityDefaults = {
  immediateRetries: 5,
  delayedRetriesCount: 3,
  delayedRetriesDelayMs: 10_000,
  errorQueue: 'error',
} as const;

/** Errors that no retry can fix: the message itself is wrong. */
const unrecoverableCodes = new Set([
  'TIDINGS_DESERIALIZATION',
  'TIDINGS_VALIDATION',
  'TIDINGS_MALFORMED_MESSAGE',
  'TIDINGS_NO_HANDLER',
  // A handler misusing the API (a reply to a message without reply-to, a reserved header): the
  // same call fails again on every retry.
  'TIDINGS_USAGE',
  // A `to`, or a reply-to read from the message, that is no queue name: the same on every retry.
  'TIDINGS_INVALID_DESTINATION',
]);

export function isUnrecoverable(error: unknown): boolean {
  // Guarded: what a handler threw may throw on every read.
  return (
    isInstanceOf(error, TidingsError) && unrecoverableCodes.has(readString(error, 'code') ?? '')
  );
}

export interface ResolvedRecoverability {
  readonly unreadableMessages: 'dead-letter' | 'error-queue';
  readonly immediateRetries: number;
  readonly delayedRetriesCount: number;
  readonly errorQueue: string;
  decide(failure: FailureInfo, canDelay: boolean): RecoverabilityAction;
}

export function resolveRecoverability(options: RecoverabilityOptions = {}): ResolvedRecoverability {
  const immediateRetries = options.immediateRetries ?? recoverabilityDefaults.immediateRetries;
  const count = options.delayedRetries?.count ?? recoverabilityDefaults.delayedRetriesCount;
  const delay = options.delayedRetries?.delayMs ?? recoverabilityDefaults.delayedRetriesDelayMs;
  const errorQueue = options.errorQueue ?? recoverabilityDefaults.errorQueue;
  for (const [name, value] of [
    ['immediateRetries', immediateRetries],
    ['delayedRetries.count', count],
  ] as const) {
    if (!Number.isInteger(value) || value < 0) {
      throw new ConfigurationError(
        `recoverability.${name} must be a whole number >= 0, got ${value}.`,
      );
    }
  }
  checkQueueName('recoverability.errorQueue', errorQueue);
  if (typeof delay === 'number' ? !isDelay(delay) : typeof delay !== 'function') {
    throw new ConfigurationError(
      `recoverability.delayedRetries.delayMs must be a number of ms >= 0 or a function of the round, got ${String(delay)}.`,
    );
  }
  const delayFor = (round: number) => (typeof delay === 'function' ? delay(round) : delay * round);
  const policy = options.policy;

  const unreadableMessages = options.unreadableMessages ?? 'dead-letter';
  if (unreadableMessages !== 'dead-letter' && unreadableMessages !== 'error-queue') {
    throw new ConfigurationError(
      `recoverability.unreadableMessages must be 'dead-letter' or 'error-queue', got ${JSON.stringify(unreadableMessages)}.`,
    );
  }
  return {
    unreadableMessages,
    immediateRetries,
    delayedRetriesCount: count,
    errorQueue,
    decide(failure, canDelay) {
      let action: RecoverabilityAction;
      if (isUnrecoverable(failure.error)) action = { kind: 'move-to-error' };
      else if (failure.immediateAttempts <= immediateRetries) action = { kind: 'immediate-retry' };
      else if (canDelay && failure.delayedRetries < count) {
        action = { kind: 'delayed-retry', delayMs: delayFor(failure.delayedRetries + 1) };
      } else action = { kind: 'move-to-error' };
      return policy ? policy(failure, action) : action;
    },
  };
}

const isDelay = (value: unknown): boolean =>
  typeof value === 'number' && Number.isFinite(value) && value >= 0;

/**
 * What is wrong with an action a policy (or a delay function) produced, or undefined when it can
 * be carried out. Such an action is a bug in the policy: the message then goes to the endpoint's
 * error queue instead, so it is neither lost nor retried in a loop.
 */
export function actionProblem(action: unknown): string | undefined {
  const kind = readString(action, 'kind');
  switch (kind) {
    case 'immediate-retry':
      return undefined;
    case 'delayed-retry': {
      const delayMs = readProperty(action, 'delayMs');
      return isDelay(delayMs) ? undefined : `a delayed retry of ${String(delayMs)} ms`;
    }
    case 'move-to-error': {
      const errorQueue = readProperty(action, 'errorQueue');
      return errorQueue === undefined ||
        (typeof errorQueue === 'string' && queueNamePattern.test(errorQueue))
        ? undefined
        : `an error queue that is not a valid name (${JSON.stringify(String(errorQueue).slice(0, 100))})`;
    }
    case 'discard':
      return typeof readProperty(action, 'reason') === 'string'
        ? undefined
        : 'a discard without a reason';
    default:
      return `no action it knows (${kind === undefined ? typeof action : JSON.stringify(kind.slice(0, 100))})`;
  }
}
