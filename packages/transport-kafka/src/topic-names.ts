import { ConfigurationError } from '@tidings/core';

const MAX_TOPIC_LENGTH = 249;

/**
 * A Kafka topic name for a queue or event type: the prefix, then the name with every character
 * Kafka does not allow in topic names (anything but letters, digits, `.`, `_`, `-`) replaced by `_`.
 */
export function toTopicName(prefix: string, name: string): string {
  const topic = `${prefix}${name}`.replace(/[^a-zA-Z0-9._-]/g, '_');
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
