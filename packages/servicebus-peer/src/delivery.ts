import rhea, { type Message, type Sender } from 'rhea';
import type { MessageEntity, StoredMessage } from './entities.js';
import type { PeerState } from './peer-state.js';

/** Hands a locked message to a receive link; the delivery tag is its lock token. */
export function deliver(
  state: PeerState,
  entity: MessageEntity,
  link: Sender,
  stored: StoredMessage,
  token: string,
): void {
  const { lastUse, deliveryLocks, counters } = state;
  const lockedUntil = entity.locks.get(token)?.lockedUntil ?? Date.now();
  // What a received message carries: sdk/servicebus/service-bus/src/serviceBusMessage.ts
  // (fromRheaMessage) reads the lock token from the delivery tag (16 bytes, a GUID),
  // deliveryCount from the header's delivery_count, and sequence number, enqueued time and
  // locked-until from these message annotations.
  const message: Message = {
    ...stored.message,
    delivery_count: stored.deliveryCount,
    message_annotations: {
      ...stored.message.message_annotations,
      'x-opt-sequence-number': rhea.types.wrap_long(stored.sequenceNumber),
      'x-opt-enqueued-time': stored.enqueuedAt,
      'x-opt-locked-until': new Date(lockedUntil),
    },
  };
  const delivery = link.send(message, Buffer.from(token, 'hex'));
  lastUse.set(link, Date.now());
  deliveryLocks.set(delivery, { entity, token });
  counters.deliveries++;
}
