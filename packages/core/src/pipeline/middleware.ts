import { UsageError } from '../errors.js';
import type { TransportDestination } from '../transport/transport.js';

/** What incoming middleware sees: one attempt at handling one message. */
export interface IncomingContext {
  readonly messageId: string;
  readonly messageType: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The deserialized, validated payload handlers will receive; middleware may replace it. */
  payload: unknown;
  readonly queue: string;
}

/** What outgoing middleware sees, before serialization. Headers may be added or changed. */
export interface OutgoingContext {
  readonly messageId: string;
  /** Undefined for a return-code reply. */
  readonly messageType: string | undefined;
  readonly payload: unknown;
  readonly headers: Record<string, string>;
  readonly destination: TransportDestination;
}

/** Calls `next()` once to go on; returning without calling it stops there. Twice: `UsageError`. */
export type Middleware<C> = (context: C, next: () => Promise<void>) => Promise<void>;
/** Around the handlers of each attempt. Not calling `next()` skips them: the message is handled. */
export type IncomingMiddleware = Middleware<IncomingContext>;
/**
 * Around the serialization of each outgoing message. Not calling `next()` stops the message: it is
 * not sent, and the send resolves (a request rejects at once with `RequestAbortedError`).
 */
export type OutgoingMiddleware = Middleware<OutgoingContext>;

/** Runs `middleware` in order around `last`, Koa style. */
export function runMiddleware<C>(
  middleware: readonly Middleware<C>[],
  context: C,
  last: () => Promise<void>,
): Promise<void> {
  if (middleware.length === 0) return last();
  const step = (index: number): Promise<void> => {
    const current = middleware[index];
    if (current === undefined) return last();
    let called = false;
    return current(context, () => {
      // The same call fails on every retry: a usage error goes straight to the error queue.
      if (called) {
        return Promise.reject(
          new UsageError(
            `next() was called more than once in middleware #${index + 1}: call it once, or not at all to stop the pipeline there.`,
          ),
        );
      }
      called = true;
      return step(index + 1);
    });
  };
  return step(0);
}
