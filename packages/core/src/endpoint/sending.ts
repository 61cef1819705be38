import type { CallbackRegistry } from '../callbacks/callback-registry.js';
import type { Reply, ReplyExpectation } from '../callbacks/reply.js';
import {
  prepareRequest,
  type RequestHost,
  type RequestWait,
} from '../callbacks/request-lifecycle.js';
import type { DurableRequestOptions } from '../durable-requests/continuation.js';
import type { EndpointDurableRequests } from '../durable-requests/durable-requests.js';
import {
  ConfigurationError,
  EndpointStateError,
  NoRouteError,
  SendOnlyEndpointError,
  UsageError,
} from '../errors.js';
import type { EndpointInstrumentation } from '../instrumentation/instrumentation.js';
import type { MessageDefinition } from '../messages/define-message.js';
import { checkDestination } from '../messages/destination-name.js';
import type { EndpointOutbox } from '../persistence/outbox.js';
import type { TransportEndpoint, TransportOperation } from '../transport/transport.js';
import { newId } from '../util.js';
import type {
  CallbackOptions,
  EndpointState,
  PublishOptions,
  RegisterOptions,
  RequestOptions,
  SendOptions,
  SendResult,
} from './endpoint.js';
import type { ResolvedEndpointOptions } from './endpoint-options.js';
import { type BuiltOperation, checkUserHeaders, type OutgoingIntent } from './outgoing.js';

/** What sending needs of its endpoint. */
export interface SendingHost {
  readonly name: string;
  readonly state: EndpointState;
  readonly options: ResolvedEndpointOptions;
  readonly registry: CallbackRegistry;
  readonly instrumentation: EndpointInstrumentation | undefined;
  readonly durableRequests: EndpointDurableRequests;
  readonly outbox: EndpointOutbox | undefined;
  readonly inputQueue: string | undefined;
  readonly instanceQueue: string | undefined;
  readonly canDelay: boolean;
  readonly transportEndpoint: TransportEndpoint;
  build(intent: OutgoingIntent): TransportOperation | Promise<BuiltOperation>;
}

/** A send whose dispatch waits one microtask, so `register` can still attach a callback. */
interface PlannedSend {
  intent: OutgoingIntent;
  dispatchStarted: boolean;
  /** Set by `register`: registers the callback, then dispatches (replaces the plain dispatch). */
  request?: () => Promise<void>;
  /** Set by a `register` that refused: the send fails with this instead of going out. */
  refused?: Error;
}

const unwrapReply = (reply: Reply, expect: ReplyExpectation): unknown =>
  expect === 'any' ? reply : reply.kind === 'code' ? reply.code : reply.body;

/**
 * An endpoint's `send`, `publish` and `request` outside a handler: checks the call, builds the
 * intent, and hands requests their lifecycle (callbacks/request-lifecycle.ts).
 */
export class EndpointSending implements RequestHost {
  constructor(private readonly host: SendingHost) {}

  get name(): string {
    return this.host.name;
  }

  get registry(): CallbackRegistry {
    return this.host.registry;
  }

  get instrumentation(): EndpointInstrumentation | undefined {
    return this.host.instrumentation;
  }

  send<T>(definition: MessageDefinition<T>, payload: T, options?: SendOptions): SendResult {
    let planned: PlannedSend;
    try {
      this.assertCanSend();
      this.checkOptions(options);
      const queue = this.resolveRoute(definition.name, options?.to);
      planned = {
        intent: {
          intent: 'send',
          messageType: definition.name,
          payload,
          destination: { kind: 'queue', queue },
          messageId: options?.messageId,
          replyTo: this.host.inputQueue,
          userHeaders: options?.headers,
          delayMs: options?.delayMs,
          express: options?.express,
        },
        dispatchStarted: false,
      };
    } catch (error) {
      const failed: Promise<never> = Promise.reject(error);
      return Object.assign(failed, {
        register: <R>(): Promise<Awaited<R>> => {
          failed.catch(() => {});
          return failed;
        },
      });
    }
    const dispatched = Promise.resolve().then(() => this.dispatchPlanned(planned));
    return Object.assign(dispatched, {
      register: <S, R>(
        callback: (reply: Reply, state: S) => R | Promise<R>,
        state?: S,
        registerOptions?: RegisterOptions,
      ): Promise<Awaited<R>> => {
        // The caller follows the callback's promise (or the error thrown here); the send's own
        // rejection is reported there, so it must not also surface as unhandled.
        dispatched.catch(() => {});
        if (this.host.options.sendOnly) {
          // Not sent either: a caller who retries after this error must not send it twice.
          planned.refused = new SendOnlyEndpointError(this.host.name, 'receive replies (register)');
          throw planned.refused;
        }
        if (planned.dispatchStarted || planned.request) {
          throw new UsageError(
            'register() must be called on the result of send() in the same expression, before the message is dispatched, e.g. endpoint.send(Msg, data).register(cb).',
          );
        }
        const messageId = planned.intent.messageId ?? newId();
        planned.intent = {
          ...planned.intent,
          messageId,
          correlationId: messageId,
          replyTo: this.host.instanceQueue,
          expressReply: true,
        };
        const { result, run } = prepareRequest(
          this,
          planned.intent,
          this.requestWait(registerOptions ?? {}),
          callback,
          state as S,
        );
        planned.request = run;
        return result;
      },
    });
  }

  async publish<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options?: PublishOptions,
  ): Promise<void> {
    this.assertCanSend();
    this.checkOptions(options);
    await this.buildAndDispatch({
      intent: 'publish',
      messageType: definition.name,
      payload,
      destination: { kind: 'publish', messageType: definition.name },
      messageId: options?.messageId,
      replyTo: this.host.inputQueue,
      userHeaders: options?.headers,
      express: options?.express,
    });
  }

  request(
    definition: MessageDefinition,
    payload: unknown,
    options:
      | RequestOptions<MessageDefinition | 'code' | undefined>
      | DurableRequestOptions<MessageDefinition | 'code', unknown> = {},
  ): Promise<unknown> {
    if ('continueWith' in options) {
      if (this.host.outbox === undefined && !this.host.options.sendOnly) {
        return Promise.reject(
          new ConfigurationError(
            `Endpoint '${this.host.name}' has no persistence: durable requests (continueWith) need one.`,
          ),
        );
      }
      return this.host.durableRequests.request(definition, payload, options);
    }
    if (this.host.options.sendOnly) {
      throw new SendOnlyEndpointError(this.host.name, 'receive replies to requests');
    }
    let intent: OutgoingIntent;
    try {
      this.assertCanSend();
      this.checkOptions(options);
      const messageId = options.messageId ?? newId();
      intent = {
        intent: 'send',
        messageType: definition.name,
        payload,
        destination: { kind: 'queue', queue: this.resolveRoute(definition.name, options.to) },
        messageId,
        correlationId: messageId,
        // Replies to a request go to this instance's queue, whoever else shares the endpoint's.
        replyTo: this.host.instanceQueue,
        // Only this process's memory waits for the reply: it need not be durable (ADR 13).
        expressReply: true,
        userHeaders: options.headers,
        delayMs: options.delayMs,
        express: options.express,
      };
    } catch (error) {
      return Promise.reject(error);
    }
    const expect = options.expect ?? 'any';
    const { result, run } = prepareRequest(
      this,
      intent,
      this.requestWait(options),
      unwrapReply,
      expect,
    );
    // run's failures reach the caller through result.
    run().catch(() => {});
    return result;
  }

  resolveRoute(messageType: string, to: string | undefined): string {
    if (to !== undefined) return checkDestination(to, "'to'");
    const route = this.host.options.routes.get(messageType);
    if (route === undefined) throw new NoRouteError(messageType);
    return route;
  }

  checkOptions(options: SendOptions | PublishOptions | undefined): void {
    if (options === undefined) return;
    checkUserHeaders(options.headers);
    if (options.express !== undefined && typeof options.express !== 'boolean') {
      throw new UsageError(
        `express must be true or false, got ${JSON.stringify(options.express)}.`,
      );
    }
    const delayMs = (options as SendOptions).delayMs;
    if (delayMs !== undefined) {
      if (!Number.isFinite(delayMs) || delayMs < 0) {
        throw new UsageError(`delayMs must be a number >= 0, got ${delayMs}.`);
      }
      if (delayMs > 0 && !this.host.canDelay) {
        throw new ConfigurationError(
          `Transport '${this.host.options.transport.name}' cannot delay delivery, so 'delayMs' is not available.`,
        );
      }
      const maxDelayMs = this.host.options.transport.capabilities.maxDelayMs;
      if (maxDelayMs !== undefined && delayMs > maxDelayMs) {
        throw new UsageError(
          `delayMs ${delayMs} is longer than the ${this.host.options.transport.name} transport can delay (at most ${maxDelayMs} ms).`,
        );
      }
    }
    if (
      options.messageId !== undefined &&
      (typeof options.messageId !== 'string' || options.messageId.length === 0)
    ) {
      throw new UsageError('messageId must be a non-empty string.');
    }
  }

  /** Runs inside a `then` callback, so what it throws rejects the send. */
  private dispatchPlanned(planned: PlannedSend): Promise<void> {
    if (planned.refused !== undefined) return Promise.reject(planned.refused);
    planned.dispatchStarted = true;
    if (planned.request) return planned.request();
    return this.buildAndDispatch(planned.intent);
  }

  /**
   * Builds one message and hands it to the transport. Not async: a build without outgoing
   * middleware is synchronous, and this runs for every send. May throw (a bad payload, say).
   */
  private buildAndDispatch(intent: OutgoingIntent, onDropped?: () => void): Promise<void> {
    const operation = this.host.build(intent);
    if (operation instanceof Promise) {
      return operation.then((built) => {
        if (built !== undefined) return this.host.transportEndpoint.dispatch([built]);
        // Outgoing middleware did not call next(): not sent, and the send resolves.
        this.host.options.logger.debug(
          'Outgoing middleware did not call next(); message not sent',
          {
            messageType: intent.messageType,
          },
        );
        onDropped?.();
      });
    }
    return this.host.transportEndpoint.dispatch([operation]);
  }

  private requestWait(
    options: CallbackOptions & { readonly expect?: MessageDefinition | 'code' | undefined },
  ): RequestWait {
    return {
      timeoutMs: options.timeoutMs ?? this.host.options.requestTimeoutMs,
      expect: options.expect,
      signal: options.signal,
    };
  }

  isStarted(): boolean {
    return this.host.state === 'started';
  }

  dispatch(intent: OutgoingIntent, onDropped: () => void): Promise<void> {
    return this.buildAndDispatch(intent, onDropped);
  }

  assertCanSend(): void {
    const state = this.host.state;
    if (state !== 'started' && state !== 'stopping') {
      throw new EndpointStateError(
        `Endpoint '${this.host.name}' is ${state}: call start() before sending, and do not send after stop().`,
      );
    }
  }
}
