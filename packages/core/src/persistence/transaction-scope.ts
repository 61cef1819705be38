import type { PublishOptions, SendOptions } from '../endpoint/endpoint.js';
import type { ContextHost } from '../endpoint/handler-context.js';
import type { BuiltOperation } from '../endpoint/outgoing.js';
import { UsageError } from '../errors.js';
import type { MessageDefinition } from '../messages/define-message.js';
import type { TransportOperation } from '../transport/transport.js';

/**
 * What `endpoint.transaction(fn)` gives `fn`: the open database transaction, and `send` and
 * `publish` whose messages are stored in it and leave after it commits.
 */
export interface TransactionScope {
  /**
   * The store's session: for `@tidings/persistence-postgres`, a `pg` client inside `BEGIN`. Typed
   * by the store's accessor (`postgresSession(scope)`) or `storageSession<S>(scope)`.
   */
  readonly session: unknown;
  /** Stores the message with the transaction; it is sent once the transaction commits. */
  send<T>(definition: MessageDefinition<T>, payload: T, options?: SendOptions): Promise<void>;
  /** Stores the event with the transaction; it is published once the transaction commits. */
  publish<T>(definition: MessageDefinition<T>, payload: T, options?: PublishOptions): Promise<void>;
}

/** Collects what a transaction sends; a send that cannot be built fails the transaction. */
export class OutboxTransactionScope implements TransactionScope {
  readonly operations: TransportOperation[] = [];
  private readonly pending: Promise<void>[] = [];
  private failure: { error: unknown } | undefined;
  private closed = false;

  constructor(
    private readonly host: ContextHost,
    readonly session: unknown,
  ) {}

  send<T>(definition: MessageDefinition<T>, payload: T, options?: SendOptions): Promise<void> {
    return this.collect(() => {
      this.host.checkOptions(options);
      return this.host.build({
        intent: 'send',
        messageType: definition.name,
        payload,
        destination: {
          kind: 'queue',
          queue: this.host.resolveRoute(definition.name, options?.to),
        },
        messageId: options?.messageId,
        replyTo: this.host.inputQueue,
        userHeaders: options?.headers,
        delayMs: options?.delayMs,
      });
    });
  }

  publish<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options?: PublishOptions,
  ): Promise<void> {
    return this.collect(() => {
      this.host.checkOptions(options);
      return this.host.build({
        intent: 'publish',
        messageType: definition.name,
        payload,
        destination: { kind: 'publish', messageType: definition.name },
        messageId: options?.messageId,
        replyTo: this.host.inputQueue,
        userHeaders: options?.headers,
      });
    });
  }

  /** Collects a message built elsewhere (a durable request) with the transaction's. */
  collectOperation(build: () => TransportOperation | Promise<BuiltOperation>): Promise<void> {
    return this.collect(build);
  }

  /** Waits for sends still being built; throws the first that failed. Later sends are refused. */
  async finish(): Promise<void> {
    this.closed = true;
    await Promise.allSettled(this.pending);
    if (this.failure !== undefined) throw this.failure.error;
  }

  private collect(build: () => TransportOperation | Promise<BuiltOperation>): Promise<void> {
    if (this.closed) {
      return Promise.reject(
        new UsageError(
          'A send or publish made after its transaction ended was not sent: await every one inside the function given to endpoint.transaction().',
        ),
      );
    }
    let operation: TransportOperation | Promise<BuiltOperation>;
    try {
      operation = build();
    } catch (error) {
      this.failure ??= { error };
      return Promise.reject(error);
    }
    if (!(operation instanceof Promise)) {
      this.operations.push(operation);
      return Promise.resolve();
    }
    const collected = operation.then(
      (built) => {
        // Undefined: outgoing middleware chose not to send it.
        if (built !== undefined) this.operations.push(built);
      },
      (error: unknown) => {
        this.failure ??= { error };
        throw error;
      },
    );
    this.pending.push(collected);
    return collected;
  }
}
