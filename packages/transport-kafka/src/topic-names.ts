import { createHash } from 'node:crypto';
import { ConfigurationError } from '@tidings/core';

const MAX_TOPIC_LENGTH = 249;
/** Characters Kafka does not allow in topic names. */
const UNSAFE = /[^a-zA-Z0-9._-]/g;
const HAS_UNSAFE = /[^a-zA-Z0-9._-]/;
/** Escaped names by name; bounded, since reply-to queue names come from senders. */
const hashed = new Map<string, string>();
const MAX_HASHED = 1_000;

/**
 * A Kafka topic name for a queue or event type: the prefix, then the name. A name with characters
 * Kafka does not allow in topic names (anything but letters, digits, `.`, `_`, `-`; event types may
 * hold `:`) has them replaced by `_` and a hash of the name appended (`sales:Placed` becomes
 * `sales_Placed-<8 hex>`), so it cannot share a topic with a name that differs only there
 * (`sales_Placed`). A name Kafka allows is used as it is. Unsafe characters in the prefix become
 * `_` (one prefix per transport: nothing to tell apart).
 */
export function toTopicName(prefix: string, name: string): string {
  const safePrefix = HAS_UNSAFE.test(prefix) ? prefix.replace(UNSAFE, '_') : prefix;
  const topic = HAS_UNSAFE.test(name)
    ? `${safePrefix}${escapedName(name)}`
    : `${safePrefix}${name}`;
  if (topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
    throw new ConfigurationError(
      `'${prefix}${name}' cannot be a Kafka topic name: it must have 1 to ${MAX_TOPIC_LENGTH} characters. Use a shorter endpoint name, instance id or prefix.`,
    );
  }
  if (topic === '.' || topic === '..') {
    throw new ConfigurationError(`'${topic}' cannot be a Kafka topic name.`);
  }
  return topic;
}

function escapedName(name: string): string {
  let escaped = hashed.get(name);
  if (escaped === undefined) {
    const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
    escaped = `${name.replace(UNSAFE, '_')}-${hash}`;
    if (hashed.size >= MAX_HASHED) hashed.clear();
    hashed.set(name, escaped);
  }
  return escaped;
}
