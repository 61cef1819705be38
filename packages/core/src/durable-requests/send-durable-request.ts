import type { BuiltOperation, OutgoingIntent } from '../endpoint/outgoing.js';
import { UsageError } from '../errors.js';
import type { MessageDefinition } from '../messages/define-message.js';
import { storageSession } from '../persistence/storage-session.js';
import type { TransportOperation } from '../transport/transport.js';
import { newId } from '../util.js';
import type { DurableSendOptions } from './continuation.js';
import { type ContinuationRegistry, checkState } from './continuation-registry.js';
import { DurableRequestTimeout } from './durable-messages.js';
import type { DurableRequestsHost } from './durable-requests.js';

/** Something that can take outgoing messages into a transaction: a handler context or a scope. */
interface Collector {
  collectOperation(build: () => TransportOperation | Promise<BuiltOperation>): Promise<void>;
  readonly conversationId?: string;
}

/** Adds a durable request (record, message, deadline) to a handler's or a scope's transaction. */
export async function sendDurableRequest(
  host: DurableRequestsHost,
  continuations: ContinuationRegistry,
  name: string,
  owner: object,
  definition: MessageDefinition,
  payload: unknown,
  options: DurableSendOptions<unknown>,
): Promise<string> {
  const store = host.durableRequestStore;
  const collector = owner as Partial<Collector>;
  if (store === undefined || typeof collector.collectOperation !== 'function') {
    throw new UsageError(
      'A durable request is sent inside a handler (its ctx) or endpoint.transaction (its scope), on an endpoint whose persistence stores durable requests.',
    );
  }
  const continuation = continuations.named(name);
  const timeoutMs = options.timeoutMs ?? host.options.requestTimeoutMs;
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
    throw new UsageError(`timeoutMs must be a positive whole number, got ${timeoutMs}.`);
  }
  host.checkOptions({ ...options, delayMs: timeoutMs });
  const state = await checkState(name, continuation, options.state);
  const session = storageSession(owner);
  const correlationId = options.messageId ?? newId();
  const inputQueue = host.inputQueue as string;
  const conversationId = collector.conversationId;
  const request: OutgoingIntent = {
    intent: 'send',
    messageType: definition.name,
    payload,
    destination: { kind: 'queue', queue: host.resolveRoute(definition.name, options.to) },
    messageId: correlationId,
    correlationId,
    conversationId,
    // The shared queue, not this instance's: any instance can run the continuation, so the
    // reply is handled even if this one is gone for good.
    replyTo: inputQueue,
    userHeaders: options.headers,
  };
  const deadline: OutgoingIntent = {
    intent: 'send',
    messageType: DurableRequestTimeout.name,
    payload: { correlationId },
    destination: { kind: 'queue', queue: inputQueue },
    correlationId,
    conversationId,
    delayMs: timeoutMs,
  };
  const saving = store.save(session, {
    correlationId,
    continuation: name,
    state: JSON.stringify(state ?? null),
    deadline: Date.now() + timeoutMs,
    requester: host.instanceId as string,
  });
  // Built while the record's insert is on its way (CPU beside a round trip to the store), and
  // collected only once it is in: no message of a request whose record failed.
  let built: Array<TransportOperation | Promise<BuiltOperation>>;
  try {
    built = [host.build(request), host.build(deadline)];
  } catch (error) {
    await saving.catch(() => {});
    throw error;
  }
  // A build that fails after a failed save is not left unhandled; collecting it reports it.
  for (const operation of built) if (operation instanceof Promise) operation.catch(() => {});
  await saving;
  const collecting = collector as Collector;
  await Promise.all(built.map((operation) => collecting.collectOperation(() => operation)));
  return correlationId;
}
