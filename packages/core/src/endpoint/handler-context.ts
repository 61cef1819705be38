import { UsageError } from '../errors.js';
import type { Logger } from '../logging/logger.js';
import type { MessageDefinition } from '../messages/define-message.js';
import { checkDestination } from '../messages/destination-name.js';
import { Headers } from '../messages/headers.js';
import type { TransportOperation } from '../transport/transport.js';
import type { HandlerContext, PublishOptions, ReplyOptions, SendOptions } from './endpoint.js';
import type { BuiltOperation, OutgoingIntent } from './outgoing.js';

/** What a handler context needs from its endpoint. */
export interface ContextHost {
  readonly endpointName: string;
  readonly inputQueue: string | undefined;
  /** Builds the operation; undefined when outgoing middleware chose not to send it. */
  build(intent: OutgoingIntent): TransportOperation | Promise<BuiltOperation>;
  resolveRoute(messageType: string, to: string | undefined): string;
  checkOptions(options: SendOptions | PublishOptions | undefined): void;
  /** Where a send made after its attempt finished is reported. */
  readonly options: { readonly logger: Logger };
}

/** What `reply`, `send` and `publish` return once the message is collected: nothing to wait for. */
const collected: Promise<void> = Promise.resolve();

const ignore = () => {};

/**
 * A `reply`, `send` or `publish` that was not collected at the call: its build failed, or outgoing
 * middleware made it asynchronous. It records whether the handler took on its failure, which a
 * native promise cannot tell: only a call of `then` with a rejection handler does (`await` on
 * anything but a native promise, `.catch`, `.then(f, g)`, `Promise.all` and its kin). `.then(f)`
 * alone and `.finally` pass the failure on to a promise of their own, which the handler may never
 * look at: they do not count, and what they return is kept from ending the process.
 */
class OutgoingBuild extends Promise<void> {
  // Promises derived from this one are plain: only the one the handler holds records anything.
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  /** The handler attached a rejection handler: a failure is then the handler's to deal with. */
  observed = false;
  /** Fulfils, never rejects, once the build is done; undefined if it failed at the call. */
  done: Promise<void> | undefined = undefined;
  /** A reply: dispatched apart from the rest (`MessageHandlerContext.replies`). */
  isReply = false;
  operation: TransportOperation | undefined = undefined;
  failed = false;
  error: unknown = undefined;
  /** Set while `finally` runs: the `then` it calls passes functions of its own, not the handler's. */
  private inFinally = false;

  // biome-ignore lint/suspicious/noThenProperty: what records that the handler looked
  override then<TResult1 = void, TResult2 = never>(
    // biome-ignore lint/suspicious/noConfusingVoidType: the signature of Promise<void>'s own then
    onfulfilled?: ((value: void) => TResult1 | PromiseLike<TResult1>) | undefined | null,
    onrejected?: ((reason: unknown) => TResult2 | PromiseLike<TResult2>) | undefined | null,
  ): Promise<TResult1 | TResult2> {
    if (typeof onrejected === 'function' && !this.inFinally) {
      this.observed = true;
      return super.then(onfulfilled, onrejected);
    }
    const derived = super.then(onfulfilled, onrejected);
    // The build's failure fails the attempt; the promise that carries it on must not also end the
    // process as an unhandled rejection. Only when the build fails: a callback's own error on
    // success stays the caller's, as with any promise. Whoever awaits `derived` still gets it.
    super.then(undefined, () => derived.then(undefined, ignore));
    return derived;
  }

  override finally(onfinally?: (() => void) | undefined | null): Promise<void> {
    // Per the spec, `finally` calls `this.then(thenFinally, catchFinally)` synchronously.
    this.inFinally = true;
    try {
      return super.finally(onfinally);
    } finally {
      this.inFinally = false;
    }
  }

  /** A build that threw at the call. */
  static failed(error: unknown): OutgoingBuild {
    const build = new OutgoingBuild((_resolve, reject) => reject(error));
    build.failed = true;
    build.error = error;
    build.ignoreRejection();
    return build;
  }

  /** A build that outgoing middleware made asynchronous. */
  static pending(operation: Promise<BuiltOperation>): OutgoingBuild {
    let resolveBuild!: () => void;
    let rejectBuild!: (error: unknown) => void;
    const build = new OutgoingBuild((resolve, reject) => {
      resolveBuild = resolve;
      rejectBuild = reject;
    });
    build.ignoreRejection();
    build.done = operation.then(
      (built) => {
        build.operation = built;
        resolveBuild();
      },
      (error: unknown) => {
        build.failed = true;
        build.error = error;
        rejectBuild(error);
      },
    );
    return build;
  }

  /**
   * Through the base `then`, so it does not count as the handler looking: an unobserved failure
   * fails the attempt instead of surfacing as an unhandled rejection, which ends the process.
   */
  private ignoreRejection(): void {
    super.then(undefined, ignore);
  }
}

/**
 * The context of one handling attempt. Outgoing messages are collected and dispatched together
 * only after every handler succeeded, so a failed attempt sends nothing.
 */
export class MessageHandlerContext implements HandlerContext {
  /** What the handlers send and publish. */
  readonly outgoing: TransportOperation[] = [];
  /**
   * What they reply, kept apart: a reply whose queue is gone (a requester that stopped) is dropped
   * while the rest still goes, and that takes knowing which message a dispatch failed on.
   */
  readonly replies: TransportOperation[] = [];
  /** Builds not collected at the call, in call order; undefined while every one was. */
  private builds: OutgoingBuild[] | undefined;
  /** What it sends is final: being dispatched, or the attempt failed. Later sends are refused. */
  private closed = false;

  constructor(
    private readonly host: ContextHost,
    readonly messageId: string,
    readonly correlationId: string,
    readonly conversationId: string,
    readonly messageType: string,
    readonly headers: Readonly<Record<string, string>>,
    readonly replyTo: string | undefined,
    readonly signal: AbortSignal,
  ) {}

  get endpointName(): string {
    return this.host.endpointName;
  }

  reply<T>(definition: MessageDefinition<T>, payload: T, options?: ReplyOptions): Promise<void>;
  reply(code: number, options?: ReplyOptions): Promise<void>;
  reply(
    definitionOrCode: MessageDefinition | number,
    payloadOrOptions?: unknown,
    maybeOptions?: ReplyOptions,
  ): Promise<void> {
    return this.collect('reply', () =>
      this.replyOperation(definitionOrCode, payloadOrOptions, maybeOptions),
    );
  }

  private replyOperation(
    definitionOrCode: MessageDefinition | number,
    payloadOrOptions: unknown,
    maybeOptions: ReplyOptions | undefined,
  ): TransportOperation | Promise<BuiltOperation> {
    const replyTo = this.replyTo;
    if (replyTo === undefined) {
      throw new UsageError(
        `Cannot reply to '${this.messageType}' (${this.messageId}): it has no reply-to address. It was sent by a send-only endpoint or by a sender that did not set 'tidings.reply-to'.`,
      );
    }
    // Read from the wire: a foreign sender's '..' must not reach a transport as a queue name.
    checkDestination(
      replyTo,
      `Cannot reply to '${this.messageType}' (${this.messageId}), so it goes to the error queue; fix its sender. The reply-to address it set ('tidings.reply-to'),`,
    );
    const isCode = typeof definitionOrCode === 'number';
    if (isCode && !Number.isSafeInteger(definitionOrCode)) {
      throw new UsageError(`A return code must be an integer, got ${definitionOrCode}.`);
    }
    const options = (isCode ? payloadOrOptions : maybeOptions) as ReplyOptions | undefined;
    this.host.checkOptions(options);
    return this.host.build({
      intent: 'reply',
      messageType: isCode ? undefined : definitionOrCode.name,
      payload: isCode ? undefined : payloadOrOptions,
      returnCode: isCode ? definitionOrCode : undefined,
      destination: { kind: 'queue', queue: replyTo },
      correlationId: this.correlationId,
      conversationId: this.conversationId,
      replyTo: this.host.inputQueue,
      userHeaders: options?.headers,
      // Only an in-memory callback waits for it: losing it equals the timeout the caller handles.
      express: this.headers[Headers.ReplyDurability] === 'express',
    });
  }

  /**
   * Builds an outgoing message now and keeps it for dispatch after the handlers. Not async: a
   * handler that replies or sends pays no frame for it; errors still come as a rejection. A build
   * that fails or runs asynchronously is tracked, so that the handler need not await it.
   */
  private collect(
    what: 'reply' | 'send' | 'publish',
    build: () => TransportOperation | Promise<BuiltOperation>,
  ): Promise<void> {
    if (this.closed) return this.refuseLate(what);
    let operation: TransportOperation | Promise<BuiltOperation>;
    try {
      operation = build();
    } catch (error) {
      return this.track(OutgoingBuild.failed(error), what);
    }
    if (operation instanceof Promise) return this.track(OutgoingBuild.pending(operation), what);
    (what === 'reply' ? this.replies : this.outgoing).push(operation);
    return collected;
  }

  /** Collects a message built elsewhere (a durable request) with what the handlers send. */
  collectOperation(build: () => TransportOperation | Promise<BuiltOperation>): Promise<void> {
    return this.collect('send', build);
  }

  private track(build: OutgoingBuild, what: 'reply' | 'send' | 'publish'): OutgoingBuild {
    build.isReply = what === 'reply';
    this.builds ??= [];
    this.builds.push(build);
    return build;
  }

  /**
   * A `reply`, `send` or `publish` made once what the attempt sends was final (a callback of a
   * send the handler did not await, a timer): it would be lost, so it is refused and logged. The
   * rejection is marked handled, so that it cannot end the process; a caller who awaits it gets it.
   */
  private refuseLate(what: 'reply' | 'send' | 'publish'): Promise<void> {
    const error = new UsageError(
      `A ${what} made while handling '${this.messageType}' (${this.messageId}) came after the handling attempt had finished, and was not sent. Await every send, reply and publish in the handler (or return its promise) so that it belongs to the attempt.`,
    );
    this.host.options.logger.error(error.message, {
      messageId: this.messageId,
      messageType: this.messageType,
    });
    const refused = Promise.reject(error);
    refused.catch(ignore);
    return refused;
  }

  /**
   * The processor is dispatching what the handlers sent, or the attempt failed: a `reply`, `send`
   * or `publish` from now on is refused. A field write, nothing more.
   */
  close(): void {
    this.closed = true;
  }

  /**
   * After the handlers returned: undefined when every message was collected at the call, nothing
   * to wait for. Otherwise waits for every build the handlers started, awaited or not, collects
   * what was built, and rejects with the first failure that no handler took on. The context is
   * closed once the wait is over, as what it sends is then final.
   */
  whenBuilt(): Promise<void> | undefined {
    return this.builds === undefined ? undefined : this.finishBuilds(this.builds);
  }

  private async finishBuilds(builds: readonly OutgoingBuild[]): Promise<void> {
    // Every step waits a turn and reads the length again: a send made in a callback of an earlier
    // one (`ctx.send(A).catch(() => ctx.send(B))`) runs before the wait moves on, and joins.
    for (let i = 0; i < builds.length; i++) await builds[i]?.done;
    // A send made later (further down a chain) would miss the dispatch: refused instead.
    this.closed = true;
    for (const build of builds) {
      if (build.failed) {
        if (!build.observed) throw build.error;
      } else if (build.operation !== undefined) {
        (build.isReply ? this.replies : this.outgoing).push(build.operation);
      }
      // else: outgoing middleware did not call next(); nothing to send.
    }
  }

  send<T>(definition: MessageDefinition<T>, payload: T, options?: SendOptions): Promise<void> {
    return this.collect('send', () => {
      this.host.checkOptions(options);
      const queue = this.host.resolveRoute(definition.name, options?.to);
      return this.host.build({
        intent: 'send',
        messageType: definition.name,
        payload,
        destination: { kind: 'queue', queue },
        messageId: options?.messageId,
        correlationId: this.correlationId,
        conversationId: this.conversationId,
        replyTo: this.host.inputQueue,
        userHeaders: options?.headers,
        delayMs: options?.delayMs,
        express: options?.express,
      });
    });
  }

  publish<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options?: PublishOptions,
  ): Promise<void> {
    return this.collect('publish', () => {
      this.host.checkOptions(options);
      return this.host.build({
        intent: 'publish',
        messageType: definition.name,
        payload,
        destination: { kind: 'publish', messageType: definition.name },
        messageId: options?.messageId,
        correlationId: this.correlationId,
        conversationId: this.conversationId,
        replyTo: this.host.inputQueue,
        userHeaders: options?.headers,
        express: options?.express,
      });
    });
  }
}
