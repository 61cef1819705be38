import { ConfigurationError, InvalidDestinationError } from '../errors.js';

/**
 * Endpoint names, instance ids and routes: what every transport accepts in a queue name (and in a
 * file name, on the learning transport), and nothing that could name a path ('..', '/').
 */
export const queueNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * Any destination a message is sent to: an endpoint's queue, or an instance queue
 * `<endpoint>.<instanceId>` (two names of the pattern above joined by '.', up to 201 characters).
 */
const destinationPattern =
  /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}(?:\.[A-Za-z0-9][A-Za-z0-9._-]{0,99})?$/;

export function isValidDestination(value: unknown): boolean {
  return typeof value === 'string' && destinationPattern.test(value);
}

/** A configured name (endpoint, instance id, route, error queue): ConfigurationError if invalid. */
export function checkQueueName(what: string, value: string): string {
  if (typeof value !== 'string' || !queueNamePattern.test(value)) {
    throw new ConfigurationError(
      `${what} ${JSON.stringify(value)} is not a valid name: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit.`,
    );
  }
  return value as string;
}

/**
 * A destination given at a call (`to`) or read from a received message (its reply-to):
 * `InvalidDestinationError` if invalid, so no transport ever sees it.
 */
export function checkDestination(value: unknown, where: string): string {
  if (!isValidDestination(value)) {
    throw new InvalidDestinationError(value, where);
  }
  return value as string;
}
