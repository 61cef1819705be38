import type { PendingRequest } from '../callbacks/callback-registry.js';
import { ReplyMismatchError } from '../errors.js';
import { validatePayload } from '../messages/validate.js';
import { remoteFailure } from '../recoverability/fault-reply.js';
import type { ParsedMessage } from './parsed-message.js';

/**
 * Settles a pending request with the reply, or with a typed error if the reply does not fit.
 * Synchronous unless a schema or the callback waits: a promise per reply shows in GC.
 */
export function completeCallback(
  pending: PendingRequest,
  parsed: ParsedMessage,
): void | Promise<void> {
  const expect = pending.expect;
  const headers = parsed.raw.headers;
  if (parsed.intent === 'fault') {
    pending.fail(remoteFailure(parsed));
    return;
  }
  if (parsed.returnCode !== undefined) {
    if (expect !== 'code' && expect !== 'any') {
      pending.fail(
        new ReplyMismatchError(`message '${expect.name}'`, `return code ${parsed.returnCode}`),
      );
      return;
    }
    return pending.complete({ kind: 'code', code: parsed.returnCode, headers });
  }
  const messageType = parsed.messageType as string;
  if (expect === 'code') {
    pending.fail(new ReplyMismatchError('a return code', `message '${messageType}'`));
    return;
  }
  if (parsed.deserializationError !== undefined) {
    pending.fail(parsed.deserializationError as Error);
    return;
  }
  const body = parsed.payload;
  if (expect !== 'any') {
    if (expect.name !== messageType) {
      pending.fail(new ReplyMismatchError(`message '${expect.name}'`, `message '${messageType}'`));
      return;
    }
    if (expect.schema !== undefined) {
      return validatePayload(expect, body).then(
        (valid) => pending.complete({ kind: 'message', messageType, body: valid, headers }),
        (error: unknown) => pending.fail(error as Error),
      );
    }
  }
  return pending.complete({ kind: 'message', messageType, body, headers });
}
