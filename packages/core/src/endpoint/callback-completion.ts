import type { PendingRequest } from '../callbacks/callback-registry.js';
import { ReplyMismatchError } from '../errors.js';
import { validatePayload } from '../messages/validate.js';
import { remoteFailure } from '../recoverability/fault-reply.js';
import type { ParsedMessage } from './parsed-message.js';

/** Settles a pending request with the reply, or with a typed error if the reply does not fit. */
export async function completeCallback(
  pending: PendingRequest,
  parsed: ParsedMessage,
): Promise<void> {
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
    await pending.complete({ kind: 'code', code: parsed.returnCode, headers });
    return;
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
  let body = parsed.payload;
  if (expect !== 'any') {
    if (expect.name !== messageType) {
      pending.fail(new ReplyMismatchError(`message '${expect.name}'`, `message '${messageType}'`));
      return;
    }
    if (expect.schema !== undefined) {
      try {
        body = await validatePayload(expect, body);
      } catch (error) {
        pending.fail(error as Error);
        return;
      }
    }
  }
  await pending.complete({ kind: 'message', messageType, body, headers });
}
