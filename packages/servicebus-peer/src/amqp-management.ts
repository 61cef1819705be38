import rhea, { type Connection, type Message } from 'rhea';
import { MANAGEMENT_SUFFIX, normalise } from './addresses.js';
import { authorized } from './claims.js';
import type { SendTarget } from './entities.js';
import { notFound, unauthorized } from './link-errors.js';
import { receivable, sendable } from './namespace.js';
import type { PeerState } from './peer-state.js';
import { amqpMessage } from './rhea-internals.js';
import type { PeerRight } from './sas.js';
import { countOutcome } from './settlement.js';

/**
 * An entity's `$management` node over AMQP: the request-response operations on messages that the
 * SDK's ManagementClient sends (schedule, cancel scheduled, renew lock, peek, settle by lock
 * token). Not the management REST API of management.ts, which creates and deletes entities.
 */

function toNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (Buffer.isBuffer(value) && value.length === 8) return Number(value.readBigInt64BE());
  return Number(value);
}

/**
 * A lock token from a $management request (an AMQP uuid, RFC byte order) as the delivery tag
 * it came from. Delivery tags carry the GUID in .NET byte order; the SDK swaps the first three
 * groups when it turns a tag into a lock token (sdk/servicebus/service-bus/src/util/utils.ts,
 * reorderLockToken), so the same swap maps it back.
 */
function tokenOf(value: unknown): string {
  const bytes = Buffer.isBuffer(value)
    ? Buffer.from(value)
    : Buffer.from(String(value).replace(/-/g, ''), 'hex');
  if (bytes.length !== 16) return '';
  return Buffer.concat([
    bytes.subarray(0, 4).reverse(),
    bytes.subarray(4, 6).reverse(),
    bytes.subarray(6, 8).reverse(),
    bytes.subarray(8),
  ]).toString('hex');
}

/** Answers a `$management` request on the link its `reply_to` names. */
function reply(
  state: PeerState,
  connection: Connection,
  request: Message,
  status: number,
  body: unknown,
  error?: { condition: string; description: string },
): void {
  const links = state.replyLinks.get(connection);
  const link = links?.get(String(request.reply_to)) ?? links?.get(normalise(request.reply_to));
  if (link === undefined || !link.is_open()) return;
  // Management responses: statusCode / statusDescription / error-condition application
  // properties, correlated by the request's message id (@azure/core-amqp
  // src/requestResponseLink.ts, onMessageReceived and getCodeDescriptionAndError).
  link.send({
    correlation_id: request.message_id as string,
    application_properties: {
      statusCode: status,
      statusDescription: error?.description ?? (status < 300 ? 'OK' : 'Error'),
      ...(error ? { 'error-condition': error.condition } : {}),
    },
    body,
  });
}

export function handleManagement(
  state: PeerState,
  connection: Connection,
  path: string,
  request: Message,
): void {
  const { counters, faults } = state;
  const operation = String(request.application_properties?.operation ?? '');
  const body = (request.body ?? {}) as Record<string, unknown>;
  const lockLost = {
    condition: 'com.microsoft:message-lock-lost',
    description:
      'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.',
  };
  // Scheduling sends; the rest (renew, peek, settle by lock token) receives.
  const right: PeerRight =
    operation === 'com.microsoft:schedule-message' ||
    operation === 'com.microsoft:cancel-scheduled-message'
      ? 'Send'
      : 'Listen';
  if (!authorized(state, connection, `${path}${MANAGEMENT_SUFFIX}`, right)) {
    reply(state, connection, request, 401, undefined, unauthorized(path, right));
    return;
  }
  const target = sendable(state, path);
  const source = receivable(state, path);
  if (target === undefined && source === undefined) {
    reply(state, connection, request, 404, undefined, {
      condition: 'com.microsoft:entity-not-found',
      description: notFound(path).description,
    });
    return;
  }
  // Operation names and body keys: @azure/core-amqp src/util/constants.ts and
  // sdk/servicebus/service-bus/src/core/managementClient.ts.
  switch (operation) {
    case 'com.microsoft:schedule-message': {
      const entries = (body.messages ?? []) as Array<Record<string, unknown>>;
      const sequenceNumbers = entries.map((entry) => {
        const message = amqpMessage.decode(entry.message as Buffer);
        const at = message.message_annotations?.['x-opt-scheduled-enqueue-time'];
        counters.scheduled++;
        return (target as SendTarget).schedule(
          message,
          at instanceof Date ? at : new Date(Number(at ?? Date.now())),
        );
      });
      reply(state, connection, request, 200, {
        'sequence-numbers': rhea.types.wrap_array(
          sequenceNumbers.map((n) => {
            const buffer = Buffer.alloc(8);
            buffer.writeBigInt64BE(BigInt(n));
            return buffer;
          }),
          0x81,
          undefined,
        ),
      });
      return;
    }
    case 'com.microsoft:cancel-scheduled-message': {
      for (const n of (body['sequence-numbers'] ?? []) as unknown[]) {
        target?.cancelScheduled(toNumber(n));
      }
      reply(state, connection, request, 200, {});
      return;
    }
    case 'com.microsoft:renew-lock': {
      const expirations: Date[] = [];
      for (const token of (body['lock-tokens'] ?? []) as unknown[]) {
        const until = source?.renew(tokenOf(token));
        if (until === undefined) {
          reply(state, connection, request, 410, undefined, lockLost);
          return;
        }
        expirations.push(until);
      }
      reply(state, connection, request, 200, { expirations });
      return;
    }
    case 'com.microsoft:peek-message': {
      const from = toNumber(body['from-sequence-number'] ?? 0);
      const count = toNumber(body['message-count'] ?? 1);
      const found = source?.peek(from, count) ?? [];
      if (found.length === 0) {
        reply(state, connection, request, 204, undefined);
        return;
      }
      reply(state, connection, request, 200, {
        messages: found.map((stored) => ({
          message: amqpMessage.encode({
            ...stored.message,
            delivery_count: stored.deliveryCount,
            message_annotations: {
              ...stored.message.message_annotations,
              'x-opt-sequence-number': rhea.types.wrap_long(stored.sequenceNumber),
              'x-opt-enqueued-time': stored.enqueuedAt,
            },
          }),
        })),
      });
      return;
    }
    case 'com.microsoft:update-disposition': {
      // Settlement by lock token, used when the receive link is gone
      // (sdk/servicebus/service-bus/src/receivers/receiverCommon.ts, settleMessageOperation).
      const status = String(body['disposition-status'] ?? '');
      const outcome =
        status === 'completed'
          ? 'complete'
          : status === 'abandoned'
            ? 'abandon'
            : status === 'suspended'
              ? 'deadletter'
              : 'defer';
      for (const token of (body['lock-tokens'] ?? []) as unknown[]) {
        if (faults.settlements > 0 || source === undefined) {
          if (faults.settlements > 0) faults.settlements--;
          reply(state, connection, request, 410, undefined, lockLost);
          return;
        }
        const done = source.unlock(tokenOf(token), outcome, {
          ...(body['deadletter-reason'] !== undefined
            ? { reason: String(body['deadletter-reason']) }
            : {}),
          ...(body['deadletter-description'] !== undefined
            ? { description: String(body['deadletter-description']) }
            : {}),
        });
        if (!done) {
          reply(state, connection, request, 410, undefined, lockLost);
          return;
        }
        countOutcome(state, outcome);
      }
      reply(state, connection, request, 200, {});
      return;
    }
    default:
      reply(state, connection, request, 501, undefined, {
        condition: 'amqp:not-implemented',
        description: `The peer does not implement '${operation}'.`,
      });
  }
}
