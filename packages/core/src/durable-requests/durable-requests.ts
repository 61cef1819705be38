import type { SendOptions } from '../endpoint/endpoint.js';
import type { BuiltOperation, OutgoingIntent } from '../endpoint/outgoing.js';
import { ConfigurationError, SendOnlyEndpointError } from '../errors.js';
import type { EndpointInstrumentation } from '../instrumentation/instrumentation.js';
import type { Logger } from '../logging/logger.js';
import type { MessageDefinition } from '../messages/define-message.js';
import type { DurableRequestStore } from '../persistence/persistence.js';
import type { TransactionScope } from '../persistence/transaction-scope.js';
import type { TransportEndpoint, TransportOperation } from '../transport/transport.js';
import type { Continuation, ContinuationOptions, DurableRequestOptions } from './continuation.js';
import { ContinuationRegistry } from './continuation-registry.js';
import { ContinuationRunner } from './continuation-runner.js';
import { DurableAwaits } from './durable-awaits.js';
import { sendDurableRequest } from './send-durable-request.js';

/**
 * The endpoint's slots of `maxPendingRequests` (its callback registry's): a durable request's
 * `await` holds one, as a plain request's callback does.
 */
export interface RequestSlots {
  /** Reserves a slot, or waits for one (rejecting on `signal` or after `timeoutMs`). */
  acquire(messageType: string, signal?: AbortSignal, timeoutMs?: number): Promise<void> | undefined;
  /** Gives a reserved slot back. */
  release(): void;
}

/** What durable requests need from their endpoint. */
export interface DurableRequestsHost {
  readonly endpointName: string;
  readonly instanceId: string | undefined;
  readonly inputQueue: string | undefined;
  readonly sendOnly: boolean;
  readonly canDelay: boolean;
  /** `created`, `starting`, `started`, `stopping` or `stopped`. */
  readonly state: string;
  readonly registry: RequestSlots;
  /** Set at start when the endpoint has an `instrumentation`. */
  readonly instrumentation: EndpointInstrumentation | undefined;
  readonly transportEndpoint: TransportEndpoint;
  readonly options: { readonly logger: Logger; readonly requestTimeoutMs: number };
  /** The endpoint's persistence's records; undefined without a persistence or support for them. */
  readonly durableRequestStore: DurableRequestStore | undefined;
  build(intent: OutgoingIntent): TransportOperation | Promise<BuiltOperation>;
  resolveRoute(messageType: string, to: string | undefined): string;
  checkOptions(options: SendOptions | undefined): void;
  transaction<R>(fn: (scope: TransactionScope) => R | Promise<R>): Promise<R>;
}

/**
 * An endpoint's durable requests: its continuations, the records they need, the `await`s of
 * this process. See docs/adr/0015-durable-requests.md.
 */
export class EndpointDurableRequests {
  private readonly continuations: ContinuationRegistry;
  private readonly awaits: DurableAwaits;
  private readonly runner: ContinuationRunner;

  constructor(private readonly host: DurableRequestsHost) {
    this.continuations = new ContinuationRegistry(host);
    this.awaits = new DurableAwaits(host, this.continuations);
    this.runner = new ContinuationRunner(host, this.continuations, this.awaits);
  }

  /** Continuations registered: with none, nothing here looks at a message. */
  get enabled(): boolean {
    return this.continuations.size > 0;
  }

  /** `await`s of durable requests in this process. Returns to zero after each settles. */
  get awaiting(): number {
    return this.awaits.size;
  }

  register<E extends MessageDefinition | 'code', S>(
    name: string,
    options: ContinuationOptions<E, S>,
  ): Continuation<E, S> {
    if (this.host.sendOnly)
      throw new SendOnlyEndpointError(this.host.endpointName, 'run continuations');
    this.continuations.add(name, options);
    return {
      name,
      reply: options.reply,
      send: (owner, definition, payload, sendOptions) =>
        sendDurableRequest(
          this.host,
          this.continuations,
          name,
          owner,
          definition,
          payload,
          sendOptions,
        ),
    };
  }

  /** At start, once the persistence is open: refuses what cannot hold the guarantee. */
  checkStart(transportName: string): void {
    if (!this.enabled) return;
    if (this.host.durableRequestStore === undefined) {
      throw new ConfigurationError(
        `Endpoint '${this.host.endpointName}' registers continuations but has no persistence that stores durable requests: pass one (e.g. @tidings/persistence-postgres) to createEndpoint({ persistence }).`,
      );
    }
    if (!this.host.canDelay) {
      throw new ConfigurationError(
        `Transport '${transportName}' cannot delay delivery, and durable requests need it for their deadlines: use a transport with delayed delivery (docs/transports.md).`,
      );
    }
  }

  /** At stop: no reply reaches this process any more; the continuations still run elsewhere. */
  rejectAll(): void {
    this.awaits.rejectAll();
  }

  /** `endpoint.request(..., { continueWith })`: see `DurableAwaits.request`. */
  request(
    definition: MessageDefinition,
    payload: unknown,
    options: DurableRequestOptions<MessageDefinition | 'code', unknown>,
  ): Promise<unknown> {
    return this.awaits.request(definition, payload, options);
  }

  /** The processor's hook: see `ContinuationRunner.route`. */
  route(...args: Parameters<ContinuationRunner['route']>): ReturnType<ContinuationRunner['route']> {
    return this.runner.route(...args);
  }
}
