import type { Container, Delivery, EventContext, Sender } from 'rhea';
import type { PeerState } from './peer-state.js';
import { amqpMessage, type Outcome } from './rhea-internals.js';

/** Counts a settlement's outcome in `stats`, however it was settled (disposition or lock token). */
export function countOutcome(state: PeerState, outcome: string): void {
  const { counters } = state;
  if (outcome === 'complete') counters.completed++;
  else if (outcome === 'deadletter') counters.deadLettered++;
  else if (outcome === 'abandon' || outcome === 'release') counters.abandoned++;
}

/**
 * Dispositions from a receiver in peek-lock mode. The SDK settles by accepted (complete),
 * modified with undeliverable_here false (abandon) or true (defer), and rejected with
 * com.microsoft:dead-letter (sdk/servicebus/service-bus/src/core/messageReceiver.ts,
 * settleMessage), then waits for the peer to settle with a state that carries no error
 * (src/core/shared.ts, onMessageSettled).
 */
function settle(
  state: PeerState,
  context: EventContext,
  kind: 'accepted' | 'released' | 'modified' | 'rejected',
): void {
  const { lastUse, deliveryLocks, faults } = state;
  const delivery = context.delivery as Delivery;
  lastUse.set(context.sender as Sender, Date.now());
  const finish = (answer: Outcome) => {
    delivery.update(true, answer as never);
    // With rcv_settle_mode second the receiver settles only after this answer and says nothing
    // more; rhea frees a delivery once both sides settled, and stops sending when 2048 wait
    // (rhea lib/session.js, Outgoing.process). The disposition above is already queued.
    (delivery as unknown as { remote_settled: boolean }).remote_settled = true;
  };
  const lock = deliveryLocks.get(delivery);
  if (lock === undefined) {
    finish(amqpMessage.accepted().described());
    return;
  }
  deliveryLocks.delete(delivery);
  const remoteState = delivery.remote_state as
    | { undeliverable_here?: boolean; error?: { info?: Record<string, unknown> } }
    | undefined;
  if (faults.settlements > 0) {
    faults.settlements--;
    lock.entity.unlock(lock.token, 'abandon');
    finish(
      amqpMessage
        .rejected({
          error: {
            condition: 'com.microsoft:message-lock-lost',
            description: 'The lock supplied is invalid (injected by the test peer).',
          },
        })
        .described(),
    );
    return;
  }
  const outcome =
    kind === 'accepted'
      ? 'complete'
      : kind === 'released'
        ? 'release'
        : kind === 'rejected'
          ? 'deadletter'
          : remoteState?.undeliverable_here
            ? 'defer'
            : 'abandon';
  const info = remoteState?.error?.info ?? {};
  const done = lock.entity.unlock(lock.token, outcome, {
    ...(info.DeadLetterReason !== undefined ? { reason: String(info.DeadLetterReason) } : {}),
    ...(info.DeadLetterErrorDescription !== undefined
      ? { description: String(info.DeadLetterErrorDescription) }
      : {}),
  });
  if (!done) {
    finish(
      amqpMessage
        .rejected({
          error: {
            condition: 'com.microsoft:message-lock-lost',
            description: 'The lock supplied is invalid: it expired or the link was closed.',
          },
        })
        .described(),
    );
    return;
  }
  countOutcome(state, outcome);
  finish(amqpMessage.accepted().described());
}

export function handleDispositions(container: Container, state: PeerState): void {
  container.on('accepted', (context: EventContext) => settle(state, context, 'accepted'));
  container.on('released', (context: EventContext) => settle(state, context, 'released'));
  container.on('modified', (context: EventContext) => settle(state, context, 'modified'));
  container.on('rejected', (context: EventContext) => settle(state, context, 'rejected'));
}
