import type { ServiceBusReceivedMessage, ServiceBusReceiver } from '@azure/service-bus';

/**
 * Keeps the locks of a receiver's in-flight messages after their link is detached.
 *
 * Service Bus detaches links idle for 10 minutes, and a link whose messages are all in slow
 * handlers (low concurrency) is idle. The SDK then stops renewing the locks of that link's
 * messages (core/streamingReceiver.js, `_onAmqpClose` → `lockRenewer.stopAll`), although Service
 * Bus keeps them and renews them by lock token over `$management`: a handler running past the
 * lock loses it, and the message is handled again. So when the link is lost, renewal of the
 * messages still being handled is taken over here, up to the same `maxAutoLockRenewalDurationMs`
 * from their arrival, at half the lock's remaining time.
 *
 * Their settlement must go by lock token too. The SDK keeps the detached link's name pointing at
 * the receiver it re-attached under a new name (ConnectionContext.messageReceivers), so it would
 * settle such a message on the new link, which does not know the delivery, and wait for an
 * answer that never comes (receivers/receiverCommon.ts, settleMessageOperation). A message
 * without a delivery link is settled over `$management` by lock token instead, as the SDK does
 * for deferred messages.
 */
export interface LockKeeper {
  arrived(message: ServiceBusReceivedMessage): void;
  /** The handler is done (settled or not): stop renewing. */
  done(message: ServiceBusReceivedMessage): void;
  /** The link was detached: the SDK no longer renews the messages that arrived on it. */
  linkLost(): void;
  stop(): void;
}

export function createLockKeeper(
  receiver: ServiceBusReceiver,
  maxRenewalMs: number,
  onError: (error: unknown, message: ServiceBusReceivedMessage) => void,
): LockKeeper {
  /** In-flight messages: when each arrived, and the renewal timer once taken over. */
  const held = new Map<
    ServiceBusReceivedMessage,
    { arrivedAt: number; timer: NodeJS.Timeout | undefined; takenOver: boolean }
  >();
  const schedule = (message: ServiceBusReceivedMessage) => {
    const state = held.get(message);
    if (state === undefined) return;
    const now = Date.now();
    const lockedUntil = message.lockedUntilUtc?.getTime() ?? now;
    const delay = Math.max(0, Math.floor((lockedUntil - now) / 2));
    if (now + delay >= state.arrivedAt + maxRenewalMs) return;
    state.timer = setTimeout(() => {
      if (!held.has(message)) return;
      receiver.renewMessageLock(message).then(
        () => schedule(message),
        (error: unknown) => {
          if (held.has(message)) onError(error, message);
        },
      );
    }, delay);
    state.timer.unref();
  };
  return {
    arrived(message) {
      held.set(message, { arrivedAt: Date.now(), timer: undefined, takenOver: false });
    },
    done(message) {
      const state = held.get(message);
      if (state === undefined) return;
      clearTimeout(state.timer);
      held.delete(message);
    },
    linkLost() {
      for (const [message, state] of held) {
        if (state.takenOver) continue;
        state.takenOver = true;
        settleByLockToken(message);
        if (maxRenewalMs > 0) schedule(message);
      }
    },
    stop() {
      for (const state of held.values()) clearTimeout(state.timer);
      held.clear();
    },
  };
}

/** Makes the SDK settle `message` over `$management` by lock token (see LockKeeper). */
function settleByLockToken(message: ServiceBusReceivedMessage): void {
  const received = message as unknown as { delivery?: Record<string, unknown> };
  if (received.delivery === undefined || received.delivery.link === undefined) return;
  // A copy: rhea's delivery itself stays as it is.
  received.delivery = { ...received.delivery, link: undefined };
}
