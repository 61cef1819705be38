import { ConfigurationError, UsageError } from '../errors.js';
import type { MessageDefinition } from '../messages/define-message.js';
import { validatePayload } from '../messages/validate.js';
import type { DurableRequestRecord } from '../persistence/persistence.js';
import type { ContinuationOptions } from './continuation.js';

/** A registered continuation, whatever its reply and state. */
export type AnyContinuation = ContinuationOptions<MessageDefinition | 'code', unknown>;

/** An endpoint's continuations by name, the name a stored durable request keeps. */
export class ContinuationRegistry {
  private readonly continuations = new Map<string, AnyContinuation>();

  /** Read when needed: the endpoint builds this before its options are set. */
  constructor(private readonly endpoint: { readonly endpointName: string }) {}

  get size(): number {
    return this.continuations.size;
  }

  get(name: string): AnyContinuation | undefined {
    return this.continuations.get(name);
  }

  /** Checks the name and the options, then adds the continuation. */
  add<E extends MessageDefinition | 'code', S>(
    name: string,
    options: ContinuationOptions<E, S>,
  ): void {
    if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,200}$/.test(name)) {
      throw new UsageError(
        `Invalid continuation name ${JSON.stringify(name)}: use 1-200 letters, digits, '.', '_', ':' or '-'. Keep it stable: stored requests name it.`,
      );
    }
    if (this.continuations.has(name)) {
      throw new UsageError(`A continuation named '${name}' is registered already.`);
    }
    if (typeof options?.onReply !== 'function') {
      throw new UsageError(`The continuation '${name}' needs an onReply function.`);
    }
    const reply = options.reply;
    if (reply !== 'code' && typeof reply?.name !== 'string') {
      throw new UsageError(
        `The continuation '${name}' needs reply: a message definition or 'code'.`,
      );
    }
    this.continuations.set(name, options as unknown as AnyContinuation);
  }

  /** A stored record names a continuation that every instance must register. */
  named(name: string): AnyContinuation {
    const continuation = this.continuations.get(name);
    if (continuation === undefined) {
      throw new ConfigurationError(
        `No continuation named '${name}' is registered on endpoint '${this.endpoint.endpointName}': register it on every instance (a stored durable request names it).`,
      );
    }
    return continuation;
  }
}

/** The state as the continuation's schema reads it, if it has one. */
export async function checkState(name: string, continuation: AnyContinuation, state: unknown) {
  if (continuation.state === undefined) return state;
  return validatePayload(
    { name: `continuation '${name}' state`, schema: continuation.state },
    state,
  );
}

/** A stored request's state, read back. */
export async function readState(record: DurableRequestRecord, continuation: AnyContinuation) {
  const state: unknown = JSON.parse(record.state);
  return checkState(record.continuation, continuation, state);
}
