import rhea, { type Delivery, type EventContext, type Message, type Receiver } from 'rhea';
import { propertyViolation, transferSize } from './limits.js';
import { entityDisabled } from './link-errors.js';
import { isDisabled, sendable } from './namespace.js';
import type { PeerState } from './peer-state.js';
import { amqpMessage, formatOf } from './rhea-internals.js';

/** What clients send to a queue or topic: decoding transfers, the limits, faults and enqueueing. */

/** Batch transfers use this message format (sdk/servicebus/service-bus/src/serviceBusMessageBatch.ts). */
const BATCH_FORMAT = 0x80013700;

/** Decodes a batch transfer: an envelope whose data sections are each an encoded message. */
function decodeTransfer(context: EventContext): Message[] {
  const raw = context.message as unknown;
  if (formatOf(context) !== BATCH_FORMAT) {
    return [Buffer.isBuffer(raw) ? amqpMessage.decode(raw) : (raw as Message)];
  }
  // rhea hands non-zero formats over undecoded (rhea lib/session.js, Incoming.on_transfer); the
  // SDK builds the envelope in sdk/servicebus/service-bus/src/serviceBusMessageBatch.ts.
  const envelope = amqpMessage.decode(raw as Buffer);
  const section = envelope.body as { content: Buffer | Buffer[]; multiple?: boolean };
  const parts = section.multiple ? (section.content as Buffer[]) : [section.content as Buffer];
  return parts.map((part) => amqpMessage.decode(part));
}

/** Takes a message sent to `address`: enqueued, scheduled, or dropped as a duplicate. */
function accept(state: PeerState, address: string, message: Message): void {
  const { counters } = state;
  const target = sendable(state, address);
  if (target === undefined) return;
  // The SDK's lock renewer and settlement logs key on message_id; Service Bus always has one.
  if (message.message_id === undefined || message.message_id === null) {
    message.message_id = rhea.generate_uuid();
  }
  const at = message.message_annotations?.['x-opt-scheduled-enqueue-time'];
  if (at instanceof Date && at.getTime() > Date.now()) {
    // scheduledEnqueueTimeUtc on a plain send (sdk/servicebus/service-bus/src/serviceBusMessage.ts,
    // toRheaMessage) schedules the message like the $management schedule request does.
    counters.scheduled++;
    target.schedule(message, at);
    return;
  }
  if (!target.enqueue(message)) counters.duplicatesDropped++;
}

/**
 * A transfer a client sent on a link to an entity, accepted once every message in it is taken,
 * or refused (an injected fault, a disabled entity, or a size or property limit).
 */
export function receiveTransfer(state: PeerState, context: EventContext, address: string): void {
  const { settings, lastUse, faults } = state;
  const link = context.receiver as Receiver;
  const delivery = context.delivery as Delivery;
  lastUse.set(link, Date.now());
  const fault = faults.sends.shift();
  if (fault !== undefined) {
    delivery.reject({
      condition: fault,
      description:
        fault === 'com.microsoft:server-busy'
          ? 'The request was terminated because the entity is being throttled. Please wait 2 seconds and try again. (injected by the test peer)'
          : 'The maximum entity size has been reached or exceeded. (injected by the test peer)',
    });
    return;
  }
  if (isDisabled(state, address)) {
    delivery.reject(entityDisabled(address));
    return;
  }
  const batch =
    formatOf(context) === BATCH_FORMAT ? (context.message as unknown as Buffer) : undefined;
  const messages = decodeTransfer(context);
  // Service Bus refuses a transfer above the max_message_size it advertised (the SDK sizes
  // batches from it but does not check a single send) and properties above its limits; the
  // sender sees the rejection as the send's error.
  const limit = settings.maxMessageSizeBytes;
  const size = batch?.length ?? transferSize(messages[0] as Message, limit);
  if (size > limit) {
    delivery.reject({
      condition: 'amqp:link:message-size-exceeded',
      description: `The message is ${size} bytes; the entity accepts at most ${limit}.`,
    });
    return;
  }
  for (const message of messages) {
    const violation = propertyViolation(message);
    if (violation !== undefined) {
      delivery.reject({
        condition: 'com.microsoft:argument-out-of-range',
        description: violation,
      });
      return;
    }
  }
  for (const message of messages) accept(state, address, message);
  delivery.accept();
}
