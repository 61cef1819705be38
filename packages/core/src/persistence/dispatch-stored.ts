import { Headers } from '../messages/headers.js';
import { readString } from '../thrown-value.js';
import type { TransportEndpoint, TransportOperation } from '../transport/transport.js';

/**
 * Dispatches a committed record's operations, its replies apart from the rest and at the same
 * time, as a handler's are without an outbox (ADR 11): a reply whose queue is gone (the requester
 * stopped, its instance queue expired) is dropped, since nobody can receive it; the rest must go.
 * Resolves with the number of replies dropped.
 */
export async function dispatchStored(
  transport: TransportEndpoint,
  operations: readonly TransportOperation[],
): Promise<number> {
  const replies: TransportOperation[] = [];
  const others: TransportOperation[] = [];
  for (const operation of operations) {
    (operation.message.headers[Headers.Intent] === 'reply' ? replies : others).push(operation);
  }
  if (replies.length === 0) {
    await transport.dispatch(others);
    return 0;
  }
  const sent = others.length > 0 ? transport.dispatch(others) : Promise.resolve();
  const replied = Promise.resolve()
    .then(() => transport.dispatch(replies))
    .then(
      () => 0,
      (error: unknown) => {
        if (readString(error, 'code') === 'TIDINGS_DESTINATION_NOT_FOUND') return replies.length;
        throw error;
      },
    );
  const [, dropped] = await Promise.all([sent, replied]);
  return dropped;
}
