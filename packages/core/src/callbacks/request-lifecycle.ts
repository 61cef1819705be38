import type { OutgoingIntent } from '../endpoint/outgoing.js';
import { EndpointStoppedError, RequestAbortedError, UsageError } from '../errors.js';
import type { EndpointInstrumentation } from '../instrumentation/instrumentation.js';
import type { MessageDefinition } from '../messages/define-message.js';
import { type CallbackRegistry, PendingRequest } from './callback-registry.js';
import type { Reply } from './reply.js';

/** What a request needs of the endpoint that makes it. */
export interface RequestHost {
  readonly name: string;
  readonly registry: CallbackRegistry;
  readonly instrumentation: EndpointInstrumentation | undefined;
  /** Whether the endpoint is started: a request that waited for a slot through a stop is not sent. */
  isStarted(): boolean;
  /** Builds and dispatches the request; `onDropped` when outgoing middleware did not call next(). */
  dispatch(intent: OutgoingIntent, onDropped: () => void): Promise<void>;
}

/** How long a request waits, what it expects, and what may cancel the wait. */
export interface RequestWait {
  readonly timeoutMs: number;
  readonly expect?: MessageDefinition | 'code' | undefined;
  readonly signal?: AbortSignal | undefined;
}

/** A request ready to go: `run` sends it, `result` settles with the callback's outcome. */
export interface PreparedRequest<R> {
  readonly result: Promise<R>;
  /** Its failures also fail `result`: a caller following `result` may ignore them. */
  readonly run: () => Promise<void>;
}

/**
 * The life of one request: `run` waits for a registry slot, registers the pending request before
 * dispatch (so no reply can race it) and dispatches; a failed dispatch fails `result` and removes
 * the entry, a slot waited for through a stop or an abort is given back. The send itself (the
 * intent) is the endpoint's to build.
 */
export function prepareRequest<S, R>(
  host: RequestHost,
  intent: OutgoingIntent,
  wait: RequestWait,
  callback: (reply: Reply, state: S) => R | Promise<R>,
  state: S,
): PreparedRequest<Awaited<R>> {
  const messageType = intent.messageType as string;
  const messageId = intent.messageId as string;
  const { timeoutMs, signal } = wait;
  const registry = host.registry;
  let resolve: (value: Awaited<R>) => void = () => {};
  let reject: (error: unknown) => void = () => {};
  const result = new Promise<Awaited<R>>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  /** Registers the pending request (a slot is held); what it throws also fails `result`. */
  const register = (askedAt: number): void => {
    try {
      // Time spent waiting for a slot counts against the request's timeout.
      const remainingMs = Math.max(1, Math.round(timeoutMs - (performance.now() - askedAt)));
      if (!host.isStarted()) {
        registry.release();
        throw new EndpointStoppedError(host.name);
      }
      // Aborted while it waited for a slot: nothing is sent.
      if (signal?.aborted) {
        registry.release();
        throw new RequestAbortedError(messageType, signal.reason);
      }
      registry.register(
        messageId,
        new PendingRequest(messageType, wait.expect ?? 'any', callback, state, resolve, reject),
        { timeoutMs: remainingMs, askedTimeoutMs: timeoutMs, signal },
      );
    } catch (error) {
      reject(error);
      throw error;
    }
  };
  /** Dispatches the registered request; a failed dispatch fails and removes it. */
  const dispatch = (): Promise<void> => {
    const failed = (error: unknown): never => {
      registry.remove(messageId)?.fail(error);
      throw error;
    };
    // Not sent, so no reply can come: the request ends now rather than at its timeout.
    const dropped = () =>
      registry
        .remove(messageId)
        ?.fail(
          new RequestAbortedError(
            messageType,
            undefined,
            'outgoing middleware did not call next(), so it was not sent',
          ),
        );
    try {
      return host.dispatch(intent, dropped).catch(failed);
    } catch (error) {
      return Promise.reject(error).catch(failed);
    }
  };
  // Not async: a request that gets a slot at once is registered and dispatched without a frame.
  const run = (): Promise<void> => {
    let askedAt: number;
    let waiting: Promise<void> | undefined;
    try {
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
        throw new UsageError(`timeoutMs must be a positive whole number, got ${timeoutMs}.`);
      }
      // Aborted before the call: nothing is sent.
      if (signal?.aborted) throw new RequestAbortedError(messageType, signal.reason);
      askedAt = performance.now();
      waiting = registry.acquire(messageType, signal, timeoutMs);
    } catch (error) {
      reject(error);
      return Promise.reject(error);
    }
    if (waiting === undefined) {
      try {
        register(askedAt);
        return dispatch();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return waiting.then(
      () => {
        register(askedAt);
        return dispatch();
      },
      (error: unknown) => {
        reject(error);
        throw error;
      },
    );
  };
  const observer = host.instrumentation?.request(
    messageType,
    intent.destination.kind === 'queue' ? intent.destination.queue : messageType,
    messageId,
  );
  if (observer === undefined) return { result, run };
  result.then(
    () => observer.settled(),
    (error: unknown) => observer.settled(error),
  );
  return { result, run: () => observer.run(run) };
}
