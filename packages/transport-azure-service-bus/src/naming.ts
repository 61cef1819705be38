import { createHash } from 'node:crypto';
import { ConfigurationError } from '@tidings/core';

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

/**
 * Refuses event types of one endpoint that would share a topic: Service Bus compares names without
 * regard to case, and `sales:Placed` and `sales-Placed` are both made `sales-Placed`. Sharing one,
 * each type's events would also reach the other's subscribers and find no handler there.
 */
export function checkDistinctTopics(endpointName: string, messageTypes: Iterable<string>): void {
  const byTopic = new Map<string, string>();
  for (const type of messageTypes) {
    const topic = topicName(type).toLowerCase();
    const other = byTopic.get(topic);
    if (other !== undefined && other !== type) {
      throw new ConfigurationError(
        `Endpoint '${endpointName}' handles '${other}' and '${type}', which would share the Service Bus topic '${topicName(type)}' (names are compared without regard to case, and characters other than letters, digits, '.', '-', '_' and '/' become '-'). Rename one of the message types.`,
      );
    }
    byTopic.set(topic, type);
  }
}
