import { defineMessage } from '../messages/define-message.js';

/**
 * A durable request's deadline: a delayed message the endpoint sends to its own input queue in
 * the request's transaction. Whoever receives it first after the deadline takes the record (if the
 * reply has not) and runs `onTimeout`.
 */
export const DurableRequestTimeout = defineMessage<{ readonly correlationId: string }>(
  'tidings.DurableRequestTimeout',
);

/** What happened to a durable request, as one instance tells the instance that sent it. */
export type ContinuationOutcome =
  | { readonly kind: 'reply'; readonly value: unknown }
  | { readonly kind: 'timeout' }
  | {
      readonly kind: 'failed';
      readonly exceptionType: string;
      readonly code?: string;
    };

/**
 * Sent, best effort and after commit, to the requesting instance's own queue when another
 * instance ran the continuation, so that an `await` there settles. Losing it costs that `await`
 * a timeout, nothing else: the continuation has run.
 */
export const ContinuationDone = defineMessage<{
  readonly continuation: string;
  readonly outcome: ContinuationOutcome;
}>('tidings.ContinuationDone');
