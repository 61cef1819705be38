import { createHash } from 'node:crypto';

/** Ids kept as they are: printable ASCII, short enough for any index. */
const readableId = /^[\x20-\x7e]{1,200}$/;

const hashedPrefix = 'sha256:';
/** The keys of `endpoint.transaction` records (`tx:` and a UUID): no incoming id may take one. */
export const transactionKeyPrefix = 'tx:';

/**
 * The inbox key of an incoming message id. The id comes from whoever can send to the queue: one
 * that is long, holds control characters (a NUL, which PostgreSQL's `text` refuses) or is not
 * ASCII becomes `sha256:` and its hex digest, so it fits any column. A readable id that starts with
 * `sha256:` or `tx:` is hashed too, so that no sender can pick an id equal to another message's
 * hashed key or to an `endpoint.transaction` record's.
 */
export function inboxKey(messageId: string): string {
  if (
    readableId.test(messageId) &&
    !messageId.startsWith(hashedPrefix) &&
    !messageId.startsWith(transactionKeyPrefix)
  ) {
    return messageId;
  }
  return hashedPrefix + createHash('sha256').update(messageId, 'utf8').digest('hex');
}
