import {
  type Continuation,
  type ContinuationOptions,
  type ContinuationReply,
  type DurableSendOptions,
  type MessageDefinition,
  type TransactionScope,
  UsageError,
  validatePayload,
} from '@tidings/core';
import {
  createTestContext,
  type TestContextOptions,
  type TestHandlerContext,
} from './test-context.js';

type AnyOptions = ContinuationOptions<MessageDefinition | 'code', unknown>;

/** The continuations of a test endpoint, and the means to run them as a reply or a deadline would. */
export class TestContinuations {
  private readonly registered = new Map<string, AnyOptions>();

  constructor(private readonly session: unknown) {}

  register<E extends MessageDefinition | 'code', S>(
    name: string,
    options: ContinuationOptions<E, S>,
    send: (
      owner: object,
      definition: MessageDefinition,
      payload: unknown,
      options: DurableSendOptions<S>,
    ) => Promise<string>,
  ): Continuation<E, S> {
    if (this.registered.has(name)) {
      throw new UsageError(`A continuation named '${name}' is registered already.`);
    }
    this.registered.set(name, options as unknown as AnyOptions);
    return {
      name,
      reply: options.reply,
      send: (owner, definition, payload, sendOptions) =>
        send(owner, definition as MessageDefinition, payload, sendOptions),
    };
  }

  private options(continuation: Continuation<MessageDefinition | 'code', unknown>): AnyOptions {
    const options = this.registered.get(continuation?.name);
    if (options === undefined) {
      throw new UsageError(
        `The continuation '${continuation?.name}' is not registered on this test endpoint: register it with endpoint.continuation(name, options).`,
      );
    }
    return options;
  }

  private context(contextOptions: TestContextOptions): TestHandlerContext {
    return createTestContext({ session: this.session, ...contextOptions });
  }

  /** Runs `onReply` (a message reply's payload is checked by its schema first). */
  async reply<E extends MessageDefinition | 'code', S>(
    continuation: Continuation<E, S>,
    reply: ContinuationReply<E>,
    state: S,
    contextOptions: TestContextOptions = {},
  ): Promise<TestHandlerContext> {
    const options = this.options(continuation as Continuation<MessageDefinition | 'code', unknown>);
    const expected = options.reply;
    const value = expected === 'code' ? reply : await validatePayload(expected, reply as unknown);
    const context = this.context({
      ...(expected === 'code' ? {} : { message: expected }),
      ...contextOptions,
    });
    await options.onReply(value as never, state, context);
    return context;
  }

  /** Runs `onTimeout`, as the deadline would; nothing when the continuation has none. */
  async timeout<E extends MessageDefinition | 'code', S>(
    continuation: Continuation<E, S>,
    state: S,
    contextOptions: TestContextOptions = {},
  ): Promise<TestHandlerContext> {
    const options = this.options(continuation as Continuation<MessageDefinition | 'code', unknown>);
    const context = this.context({
      messageType: 'tidings.DurableRequestTimeout',
      ...contextOptions,
    });
    await options.onTimeout?.(state, context);
    return context;
  }

  /** Runs `onFailure` with a fault or mismatch error; without one, the error is thrown. */
  async failure<E extends MessageDefinition | 'code', S>(
    continuation: Continuation<E, S>,
    error: Error,
    state: S,
    contextOptions: TestContextOptions = {},
  ): Promise<TestHandlerContext> {
    const options = this.options(continuation as Continuation<MessageDefinition | 'code', unknown>);
    const context = this.context(contextOptions);
    if (options.onFailure === undefined) throw error;
    await options.onFailure(error, state, context);
    return context;
  }
}

/** Sends a durable request's message through a handler context's or a scope's `send`. */
export function sendThrough(
  owner: object,
  definition: MessageDefinition,
  payload: unknown,
  options: DurableSendOptions<unknown>,
  correlationId: string,
): Promise<void> {
  const sender = owner as Partial<Pick<TransactionScope, 'send'>>;
  if (typeof sender.send !== 'function') {
    throw new UsageError('continuation.send needs a handler context or a transaction scope.');
  }
  const { state: _state, timeoutMs: _timeoutMs, ...sendOptions } = options;
  return sender.send(definition, payload, { ...sendOptions, messageId: correlationId });
}
