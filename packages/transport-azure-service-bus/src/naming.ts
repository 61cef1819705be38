import { createHash } from 'node:crypto';

/** Service Bus entity names: letters, digits, `.`, `-`, `_`, `/`; subscription names at most 50. */
const INVALID = /[^A-Za-z0-9._\-/]/g;
const MAX_TOPIC = 260;
const MAX_SUBSCRIPTION = 50;

function fit(name: string, max: number): string {
  if (name.length <= max) return name;
  // Keep it readable and unique: a prefix plus a hash of the whole name.
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 10);
  return `${name.slice(0, max - 11)}-${hash}`;
}

/** The topic an event type is published to: one topic per message type. */
export function topicName(messageType: string): string {
  return fit(messageType.replace(INVALID, '-'), MAX_TOPIC);
}

/** A subscribing endpoint's subscription on a topic: named after its input queue. */
export function subscriptionName(inputQueue: string): string {
  return fit(inputQueue.replace(/[^A-Za-z0-9._-]/g, '-'), MAX_SUBSCRIPTION);
}
