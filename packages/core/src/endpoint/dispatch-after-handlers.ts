import { readString } from '../thrown-value.js';
import type { MessageOutcome } from '../transport/transport.js';
import type { MessageHandlerContext } from './handler-context.js';
import type { ProcessorHost } from './message-processor.js';

/** What sending a handled message's outgoing messages needs from the endpoint. */
export type DispatchHost = Pick<
  ProcessorHost,
  'shutdownSignal' | 'counters' | 'transportEndpoint' | 'options'
>;

/**
 * Handlers succeeded: once what they started sending is built (asynchronous outgoing middleware,
 * a send not awaited), send it, then the message is handled.
 */
export function dispatchAfterHandlers(
  host: DispatchHost,
  context: MessageHandlerContext,
  failed: (error: unknown) => Promise<MessageOutcome>,
): MessageOutcome | Promise<MessageOutcome> {
  // Stopped past the deadline while handling: the outcome is not ours to make durable.
  if (host.shutdownSignal.aborted) return 'abandon';
  const built = context.whenBuilt();
  if (built === undefined) return dispatchOutgoing(host, context, failed);
  return built.then(() => dispatchOutgoing(host, context, failed), failed);
}

function dispatchOutgoing(
  host: DispatchHost,
  context: MessageHandlerContext,
  failed: (error: unknown) => Promise<MessageOutcome>,
): MessageOutcome | Promise<MessageOutcome> {
  // What goes out is final: a send made later (in a callback of one not awaited) is refused.
  context.close();
  // Or while waiting for what the handlers sent to be built.
  if (host.shutdownSignal.aborted) return 'abandon';
  const { outgoing, replies } = context;
  const handled = () => {
    host.counters.handled++;
    return 'complete' as const;
  };
  if (outgoing.length === 0 && replies.length === 0) return handled();
  const transport = host.transportEndpoint;
  let dispatched: Promise<unknown>;
  try {
    if (replies.length === 0) {
      dispatched = transport.dispatch(outgoing);
    } else if (outgoing.length === 0) {
      // Replies alone, as a request's handler sends: one dispatch, as ever.
      return transport
        .dispatch(replies)
        .then(handled, (error: unknown) =>
          undeliverableReplies(host, error, context) ? handled() : failed(error),
        );
    } else {
      // Replies apart from the rest, at the same time: a batch that fails on one reply cannot
      // say which messages it sent, and a reply nobody can receive must not hold back the rest.
      const sent = transport.dispatch(outgoing);
      let replied: Promise<void>;
      try {
        replied = transport.dispatch(replies);
      } catch (error) {
        // Still through Promise.all: `sent` must not be left to reject unhandled.
        replied = Promise.reject(error);
      }
      dispatched = Promise.all([
        sent,
        replied.catch((error: unknown) => {
          if (!undeliverableReplies(host, error, context)) throw error;
        }),
      ]);
    }
  } catch (error) {
    return failed(error);
  }
  return dispatched.then(handled, failed);
}

/**
 * True, after a warning, when the replies failed because their queue is gone: the requester
 * stopped and its instance queue expired, or it was deleted. Nobody can receive them any more,
 * and failing the attempt would run the handlers again and end a message that was handled in
 * the error queue. A send to a missing queue stays a failure: that is a route to fix.
 */
function undeliverableReplies(
  host: DispatchHost,
  error: unknown,
  context: MessageHandlerContext,
): boolean {
  if (readString(error, 'code') !== 'TIDINGS_DESTINATION_NOT_FOUND') return false;
  host.counters.undeliverableReplies += context.replies.length;
  host.options.logger.warn(
    `Dropped a reply to '${context.replyTo}': that queue no longer exists, so nobody can receive it (the requester stopped and its queue expired, or it was deleted)`,
    { messageId: context.messageId, correlationId: context.correlationId },
  );
  return true;
}
