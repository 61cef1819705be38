import { CallbackRegistry } from '../callbacks/callback-registry.js';
import type { Reply } from '../callbacks/reply.js';
import type {
  Continuation,
  ContinuationOptions,
  DurableRequestOptions,
} from '../durable-requests/continuation.js';
import { EndpointDurableRequests } from '../durable-requests/durable-requests.js';
import {
  ConfigurationError,
  EndpointStateError,
  EndpointStoppedError,
  SendOnlyEndpointError,
  UsageError,
} from '../errors.js';
import type { EndpointInstrumentation } from '../instrumentation/instrumentation.js';
import { type LongTimer, setLongTimeout } from '../long-timer.js';
import type { MessageDefinition } from '../messages/define-message.js';
import { EndpointOutbox } from '../persistence/outbox.js';
import type { TransactionScope } from '../persistence/transaction-scope.js';
import type { IncomingMiddleware, OutgoingMiddleware } from '../pipeline/middleware.js';
import type {
  IncomingTransportMessage,
  MessageOutcome,
  TransportEndpoint,
  TransportOperation,
} from '../transport/transport.js';
import type {
  Endpoint,
  EndpointState,
  EndpointStats,
  Handler,
  PublishOptions,
  RequestOptions,
  SendOptions,
  SendResult,
} from './endpoint.js';
import {
  type EndpointOptions,
  type ResolvedEndpointOptions,
  resolveEndpointOptions,
} from './endpoint-options.js';
import {
  type HandlerRegistration,
  MessageProcessor,
  type ProcessorCounters,
  type ProcessorHost,
} from './message-processor.js';
import { type BuiltOperation, buildOperation, type OutgoingIntent } from './outgoing.js';
import { EndpointSending, type SendingHost } from './sending.js';

/** Creates an endpoint: register handlers, then `start()`. */
export function createEndpoint(options: EndpointOptions): Endpoint {
  return new TidingsEndpoint(resolveEndpointOptions(options));
}

/** An endpoint with no input queue: it can `send` and `publish`, not receive. */
export function createSendOnlyEndpoint(options: Omit<EndpointOptions, 'sendOnly'>): Endpoint {
  return createEndpoint({ ...options, sendOnly: true });
}

interface InFlightEntry {
  settle: (outcome: MessageOutcome) => void;
}

class TidingsEndpoint implements Endpoint, ProcessorHost, SendingHost {
  readonly registry: CallbackRegistry;
  readonly handlers = new Map<string, HandlerRegistration>();
  readonly incomingMiddleware: IncomingMiddleware[] = [];
  readonly outgoingMiddleware: OutgoingMiddleware[] = [];
  readonly counters: ProcessorCounters = {
    handled: 0,
    deadLettered: 0,
    immediateRetries: 0,
    delayedRetries: 0,
    movedToErrorQueue: 0,
    unmatchedReplies: 0,
    undeliverableReplies: 0,
    duplicates: 0,
  };
  readonly inputQueue: string | undefined;
  readonly instanceQueue: string | undefined;
  private currentState: EndpointState = 'created';
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private stopAsked = false;
  private connection: TransportEndpoint | undefined;
  private readonly processor = new MessageProcessor(this);
  private readonly shutdown = new AbortController();
  private readonly inFlight = new Set<InFlightEntry>();
  /** Messages whose handling is running synchronously right now (not in `inFlight`). */
  private handlingNow = 0;
  private inFlightDrained: (() => void) | undefined;
  private outgoingSettings: Parameters<typeof buildOperation>[1] | undefined;
  readonly outbox: EndpointOutbox | undefined;
  /** Set at start when the endpoint has an `instrumentation`. */
  instrumentation: EndpointInstrumentation | undefined;
  readonly durableRequests: EndpointDurableRequests = new EndpointDurableRequests(this);
  private readonly sending = new EndpointSending(this);

  constructor(readonly options: ResolvedEndpointOptions) {
    this.registry = new CallbackRegistry(options.maxPendingRequests);
    this.outbox =
      options.persistence === undefined
        ? undefined
        : new EndpointOutbox(options.persistence, options.outbox, this);
    if (!options.sendOnly) {
      this.inputQueue = options.name;
      this.instanceQueue = `${options.name}.${options.instanceId}`;
    }
  }

  get name(): string {
    return this.options.name;
  }
  get endpointName(): string {
    return this.options.name;
  }
  get instanceId(): string | undefined {
    return this.options.instanceId;
  }
  get sendOnly(): boolean {
    return this.options.sendOnly;
  }
  get state(): EndpointState {
    return this.currentState;
  }
  get canDelay(): boolean {
    return this.options.transport.capabilities.delayedDelivery;
  }
  get shutdownSignal(): AbortSignal {
    return this.shutdown.signal;
  }
  get transportEndpoint(): TransportEndpoint {
    if (this.connection === undefined) {
      throw new EndpointStateError(`Endpoint '${this.name}' is not started.`);
    }
    return this.connection;
  }
  get durableRequestStore() {
    return this.outbox?.durableRequestStore;
  }
  get stats(): EndpointStats {
    return {
      pendingRequests: this.registry.size,
      waitingRequests: this.registry.waiting,
      awaitedDurableRequests: this.durableRequests.awaiting,
      inFlight: this.inFlight.size + this.handlingNow,
      ...this.counters,
    };
  }

  handle<T>(definition: MessageDefinition<T>, handler: Handler<T>): this {
    if (this.options.sendOnly) throw new SendOnlyEndpointError(this.name, 'handle messages');
    this.assertConfigurable('handle');
    if (typeof handler !== 'function') {
      throw new UsageError(`The handler for '${definition?.name}' must be a function.`);
    }
    const existing = this.handlers.get(definition.name);
    if (existing === undefined) {
      this.handlers.set(definition.name, {
        definition,
        handlers: [handler as Handler<unknown>],
      });
    } else existing.handlers.push(handler as Handler<unknown>);
    return this;
  }

  continuation<E extends MessageDefinition | 'code', S>(
    name: string,
    options: ContinuationOptions<E, S>,
  ): Continuation<E, S> {
    this.assertConfigurable('continuation');
    return this.durableRequests.register(name, options);
  }

  useIncoming(middleware: IncomingMiddleware): this {
    this.assertConfigurable('useIncoming');
    this.incomingMiddleware.push(middleware);
    return this;
  }

  useOutgoing(middleware: OutgoingMiddleware): this {
    this.assertConfigurable('useOutgoing');
    this.outgoingMiddleware.push(middleware);
    return this;
  }

  /**
   * A start already under way: its promise, so every caller sees one outcome. After `stop()` was
   * asked for, or once started: `EndpointStateError`. A start that failed may be tried again.
   */
  start(): Promise<void> {
    if (this.stopping !== undefined) {
      return Promise.reject(
        new EndpointStateError(
          `Endpoint '${this.name}' cannot start: stop() was called. Create a new endpoint to start again.`,
        ),
      );
    }
    if (this.currentState === 'starting' && this.starting !== undefined) return this.starting;
    const starting = this.startOnce();
    // Only a start that got under way is one to join or wait for; a refused one is not.
    if (this.currentState === 'starting') this.starting = starting;
    return starting;
  }

  private async startOnce(): Promise<void> {
    if (this.currentState !== 'created') {
      throw new EndpointStateError(
        `Endpoint '${this.name}' cannot start: it is ${this.currentState}. Create a new endpoint to start again.`,
      );
    }
    const { transport, logger, recoverability } = this.options;
    this.currentState = 'starting';
    this.outgoingSettings = {
      endpointName: this.name,
      instanceId: this.options.instanceId,
      serializer: this.options.serializer,
      maxMessageSizeBytes: transport.capabilities.maxMessageSizeBytes,
      transportName: transport.name,
      middleware: this.outgoingMiddleware,
      maxMessageIdBytes: transport.capabilities.maxMessageIdBytes,
      maxHeaderNameBytes: transport.capabilities.maxHeaderNameBytes,
    };
    try {
      const opened = await transport.openEndpoint(
        {
          endpointName: this.name,
          ...(this.inputQueue !== undefined ? { inputQueue: this.inputQueue } : {}),
          ...(this.instanceQueue !== undefined ? { instanceQueue: this.instanceQueue } : {}),
          errorQueue: recoverability.errorQueue,
          subscriptions: [...this.handlers.keys()],
        },
        { logger },
      );
      this.instrumentation = this.options.instrumentation?.instrumentEndpoint(
        {
          endpointName: this.name,
          instanceId: this.options.instanceId,
          transportName: transport.name,
          maxMessageSizeBytes: transport.capabilities.maxMessageSizeBytes,
          logger,
        },
        opened,
      );
      this.connection = this.instrumentation?.connection ?? opened;
      // Before receiving: the first message may need its transaction.
      await this.outbox?.start();
      this.durableRequests.checkStart(transport.name);
      if (!this.options.sendOnly) {
        await this.connection.startReceiving({
          concurrency: this.options.concurrency,
          onMessage: (message) => this.onMessage(message),
        });
      }
    } catch (error) {
      this.currentState = 'created';
      await this.outbox?.stop().catch(() => {});
      await this.connection?.close().catch(() => {});
      this.connection = undefined;
      throw error;
    }
    this.currentState = 'started';
    if (!this.options.sendOnly && recoverability.delayedRetriesCount > 0 && !this.canDelay) {
      logger.warn(
        `Transport '${transport.name}' cannot delay delivery: delayed retries are off for endpoint '${this.name}'; failures go to the error queue after immediate retries.`,
      );
    }
    logger.info(`Endpoint '${this.name}' started`, {
      transport: transport.name,
      ...(this.options.sendOnly
        ? { sendOnly: true }
        : {
            instanceId: this.options.instanceId,
            instanceIdGenerated: this.options.instanceIdGenerated,
            instanceQueue: this.instanceQueue,
          }),
    });
  }

  get stopRequested(): boolean {
    return this.stopAsked;
  }

  /** One stop per endpoint: a second call waits for the first. */
  stop(): Promise<void> {
    // Before anything else: from here on, a failed attempt abandons its message.
    this.stopAsked = true;
    this.stopping ??= this.stopOnce();
    return this.stopping;
  }

  private async stopOnce(): Promise<void> {
    // Asked for while starting: stop once the start is done (or has failed).
    if (this.currentState === 'starting') await this.starting?.catch(() => {});
    if (this.currentState === 'created') {
      this.currentState = 'stopped';
      return;
    }
    if (this.currentState !== 'started') return;
    this.currentState = 'stopping';
    const connection = this.transportEndpoint;
    try {
      if (!this.options.sendOnly) await connection.stopReceiving();
      // No reply can arrive any more: requests fail now, so handlers awaiting one finish instead
      // of holding the drain until its deadline.
      this.registry.rejectAll(new EndpointStoppedError(this.name));
      this.durableRequests.rejectAll();
      await this.drainInFlight();
    } finally {
      await this.outbox?.stop().catch((error: unknown) => {
        this.options.logger.warn('Closing the persistence failed', { error: String(error) });
      });
      await connection.close();
      this.currentState = 'stopped';
      this.options.logger.info(`Endpoint '${this.name}' stopped`);
    }
  }

  send<T>(definition: MessageDefinition<T>, payload: T, options?: SendOptions): SendResult {
    return this.sending.send(definition, payload, options);
  }

  publish<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options?: PublishOptions,
  ): Promise<void> {
    return this.sending.publish(definition, payload, options);
  }

  request<T, R>(
    definition: MessageDefinition<T>,
    payload: T,
    options: RequestOptions<MessageDefinition<R>> & { readonly expect: MessageDefinition<R> },
  ): Promise<R>;
  request<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options: RequestOptions<'code'> & { readonly expect: 'code' },
  ): Promise<number>;
  request<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options?: RequestOptions<undefined>,
  ): Promise<Reply>;
  request(
    definition: MessageDefinition,
    payload: unknown,
    options?:
      | RequestOptions<MessageDefinition | 'code' | undefined>
      | DurableRequestOptions<MessageDefinition | 'code', unknown>,
  ): Promise<unknown> {
    return this.sending.request(definition, payload, options);
  }

  transaction<R>(fn: (scope: TransactionScope) => R | Promise<R>): Promise<R> {
    if (this.outbox === undefined) {
      return Promise.reject(
        new ConfigurationError(
          `Endpoint '${this.name}' has no persistence: pass one to createEndpoint ({ persistence }) to use transaction().`,
        ),
      );
    }
    try {
      this.sending.assertCanSend();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.outbox.transaction(fn);
  }

  // ProcessorHost and ContextHost

  build(intent: OutgoingIntent): TransportOperation | Promise<BuiltOperation> {
    if (this.outgoingSettings === undefined) {
      throw new EndpointStateError(`Endpoint '${this.name}' is not started.`);
    }
    return buildOperation(intent, this.outgoingSettings);
  }

  resolveRoute(messageType: string, to: string | undefined): string {
    return this.sending.resolveRoute(messageType, to);
  }

  checkOptions(options: SendOptions | PublishOptions | undefined): void {
    this.sending.checkOptions(options);
  }

  // internals

  private onMessage(message: IncomingTransportMessage): Promise<MessageOutcome> {
    this.handlingNow++;
    let result: MessageOutcome | Promise<MessageOutcome>;
    try {
      result = this.processor.process(message);
    } finally {
      this.handlingNow--;
    }
    // Handled without waiting on anything: nothing is left in flight to track.
    if (!(result instanceof Promise)) return Promise.resolve(result);
    const processing = result;
    return new Promise<MessageOutcome>((resolve) => {
      const entry: InFlightEntry = {
        settle: (outcome) => {
          if (!this.inFlight.delete(entry)) return;
          resolve(outcome);
          if (this.inFlight.size === 0) this.inFlightDrained?.();
        },
      };
      this.inFlight.add(entry);
      processing.then(entry.settle);
    });
  }

  /** Waits for in-flight messages up to the stop deadline, then abandons the rest. */
  private async drainInFlight(): Promise<void> {
    if (this.inFlight.size > 0) {
      let timer: LongTimer | undefined;
      await new Promise<void>((resolve) => {
        this.inFlightDrained = resolve;
        timer = setLongTimeout(resolve, this.options.stopTimeoutMs);
      });
      timer?.clear();
      this.inFlightDrained = undefined;
    }
    if (this.inFlight.size > 0) {
      this.options.logger.warn(
        `Stop deadline (${this.options.stopTimeoutMs} ms) passed with ${this.inFlight.size} message(s) still being handled; they will be received again`,
      );
    }
    this.shutdown.abort(new EndpointStoppedError(this.name));
    for (const entry of [...this.inFlight]) entry.settle('abandon');
  }

  private assertConfigurable(operation: string): void {
    if (this.currentState !== 'created') {
      throw new EndpointStateError(
        `${operation}() must be called before start(); endpoint '${this.name}' is ${this.currentState}.`,
      );
    }
  }
}
