import { DEAD_LETTER_SUFFIX, normalise } from './addresses.js';
import { deliver } from './delivery.js';
import { type EntityOptions, MessageEntity, type SendTarget } from './entities.js';
import type { PeerState } from './peer-state.js';

/** The namespace's entities: making one, and finding where a client sends or receives. */

/** A queue or subscription, with its dead-letter queue; deliveries go out through `deliver`. */
export function newEntity(
  state: PeerState,
  path: string,
  entityOptions: EntityOptions,
): MessageEntity {
  const { queues } = state;
  const forwardTo = entityOptions.forwardTo;
  const entity = new MessageEntity(
    path,
    entityOptions,
    (consumer, stored, token) => deliver(state, entity, consumer.link, stored, token),
    forwardTo === undefined
      ? undefined
      : (message) => {
          // Auto-forwarding (forwardTo) moves the message into the target queue as a new send.
          const target = queues.get(normalise(forwardTo));
          if (target === undefined) entity.deadLetter?.enqueue(message);
          else target.enqueue(message);
        },
  );
  entity.deadLetter = new MessageEntity(`${path}/$DeadLetterQueue`, {}, (consumer, s, t) =>
    deliver(state, entity.deadLetter as MessageEntity, consumer.link, s, t),
  );
  return entity;
}

/** Where a client may receive from: a queue, a subscription, or either's dead-letter queue. */
export function receivable(state: PeerState, address: string): MessageEntity | undefined {
  const { queues, topics } = state;
  let path = normalise(address);
  const deadLetter = path.endsWith(DEAD_LETTER_SUFFIX);
  if (deadLetter) path = path.slice(0, -DEAD_LETTER_SUFFIX.length);
  let entity = queues.get(path);
  const parts = path.split('/');
  if (entity === undefined && parts.length === 3 && parts[1] === 'subscriptions') {
    entity = topics.get(parts[0] as string)?.subscriptions.get(parts[2] as string);
  }
  return deadLetter ? entity?.deadLetter : entity;
}

/** Where a client may send to: a queue or a topic. */
export function sendable(state: PeerState, address: string): SendTarget | undefined {
  const path = normalise(address);
  return state.queues.get(path) ?? state.topics.get(path);
}

/** The entity a link is on is disabled: the path or the queue or topic it belongs to. */
export function isDisabled(state: PeerState, address: string): boolean {
  const path = normalise(address);
  for (const entity of state.disabled) {
    if (path === entity || path.startsWith(`${entity}/`)) return true;
  }
  return false;
}
