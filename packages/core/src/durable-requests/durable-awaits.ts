import {
  ContinuationFailedError,
  EndpointStoppedError,
  RequestAbortedError,
  RequestTimeoutError,
  SendOnlyEndpointError,
  UsageError,
} from '../errors.js';
import { type LongTimer, setLongTimeout } from '../long-timer.js';
import type { MessageDefinition } from '../messages/define-message.js';
import { newId } from '../util.js';
import type { DurableRequestOptions } from './continuation.js';
import type { ContinuationRegistry } from './continuation-registry.js';
import type { ContinuationOutcome } from './durable-messages.js';
import type { DurableRequestsHost } from './durable-requests.js';
import { sendDurableRequest } from './send-durable-request.js';

/** Past the deadline, how long an `await` waits to hear of `onTimeout` before it gives up. */
export const awaitGraceMs = 10_000;

/** This process's `await` of a durable request. */
export interface Waiter {
  readonly continuation: string;
  readonly messageType: string;
  readonly timeoutMs: number;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** A durable `request` as asked, checked, before it has a slot. */
interface AskedRequest {
  readonly name: string;
  readonly definition: MessageDefinition;
  readonly payload: unknown;
  readonly options: DurableRequestOptions<MessageDefinition | 'code', unknown>;
  readonly correlationId: string;
  readonly timeoutMs: number;
}

/** Ends an `await` as its request ended. */
export function settleWaiter(
  waiter: Waiter,
  correlationId: string,
  outcome: ContinuationOutcome,
): void {
  if (outcome.kind === 'reply') waiter.resolve(outcome.value);
  else if (outcome.kind === 'timeout') {
    waiter.reject(new RequestTimeoutError(waiter.messageType, waiter.timeoutMs, correlationId));
  } else
    waiter.reject(
      new ContinuationFailedError(waiter.continuation, outcome.exceptionType, outcome.code),
    );
}

/**
 * The `await`s of durable requests in this process: a convenience on top of the stored request,
 * whose continuation runs whether anyone here still waits or not.
 */
export class DurableAwaits {
  private readonly waiters = new Map<string, Waiter>();

  constructor(
    private readonly host: DurableRequestsHost,
    private readonly continuations: ContinuationRegistry,
  ) {}

  /** Returns to zero after each settles. */
  get size(): number {
    return this.waiters.size;
  }

  has(correlationId: string): boolean {
    return this.waiters.has(correlationId);
  }

  /** The request's `await` in this process, if any, which leaves the map: it is to be settled. */
  take(correlationId: string): Waiter | undefined {
    const waiter = this.waiters.get(correlationId);
    if (waiter !== undefined) this.waiters.delete(correlationId);
    return waiter;
  }

  /** At stop: no reply reaches this process any more; the continuations still run elsewhere. */
  rejectAll(): void {
    for (const [correlationId, waiter] of this.waiters) {
      this.waiters.delete(correlationId);
      waiter.reject(new EndpointStoppedError(this.host.endpointName));
    }
  }

  /**
   * `endpoint.request(..., { continueWith })`: takes a slot of `maxPendingRequests` (waiting for
   * one like a plain request), stores and sends in a transaction, then awaits. With an
   * instrumentation, the wait is a `request` span, the request and its deadline sent within it.
   */
  request(
    definition: MessageDefinition,
    payload: unknown,
    options: DurableRequestOptions<MessageDefinition | 'code', unknown>,
  ): Promise<unknown> {
    if (this.host.sendOnly) {
      throw new SendOnlyEndpointError(this.host.endpointName, 'receive replies to requests');
    }
    const continuation = options.continueWith;
    const name = continuation?.name;
    if (name === undefined || this.continuations.get(name) === undefined) {
      return Promise.reject(
        new UsageError(
          `continueWith must be a continuation registered on endpoint '${this.host.endpointName}'.`,
        ),
      );
    }
    if (options.expect !== undefined && options.expect !== continuation.reply) {
      return Promise.reject(
        new UsageError(`expect must be the continuation '${name}''s reply, or left out.`),
      );
    }
    const signal = options.signal;
    if (signal?.aborted)
      return Promise.reject(new RequestAbortedError(definition.name, signal.reason));
    const timeoutMs = options.timeoutMs ?? this.host.options.requestTimeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      return Promise.reject(
        new UsageError(`timeoutMs must be a positive whole number, got ${timeoutMs}.`),
      );
    }
    let destination: string;
    try {
      destination = this.host.resolveRoute(definition.name, options.to);
    } catch (error) {
      return Promise.reject(error);
    }
    const correlationId = options.messageId ?? newId();
    const asked: AskedRequest = { name, definition, payload, options, correlationId, timeoutMs };
    const observer = this.host.instrumentation?.request(
      definition.name,
      destination,
      correlationId,
    );
    if (observer === undefined) return this.withSlot(asked);
    const result = observer.run(() => this.withSlot(asked));
    result.then(
      () => observer.settled(),
      (error: unknown) => observer.settled(error),
    );
    return result;
  }

  /**
   * Runs the request once it holds a slot: at once, or after waiting for one, which counts
   * against its timeout. A wait that times out or is aborted has written and sent nothing.
   */
  private withSlot(asked: AskedRequest): Promise<unknown> {
    const { definition, options } = asked;
    const askedAt = performance.now();
    const waiting = this.host.registry.acquire(definition.name, options.signal, asked.timeoutMs);
    if (waiting === undefined) return this.sendAndAwait(asked, asked.timeoutMs);
    return waiting.then(() =>
      this.sendAndAwait(
        asked,
        Math.max(1, Math.round(asked.timeoutMs - (performance.now() - askedAt))),
      ),
    );
  }

  /** Holding a slot: registers the waiter, then stores and sends in a transaction of its own. */
  private sendAndAwait(asked: AskedRequest, timeoutMs: number): Promise<unknown> {
    const { name, definition, options, correlationId } = asked;
    const signal = options.signal;
    // Stopping (a wait for a slot ends at stop), or aborted while it waited: nothing is sent.
    if (this.host.state === 'stopping' || this.host.state === 'stopped') {
      this.host.registry.release();
      return Promise.reject(new EndpointStoppedError(this.host.endpointName));
    }
    if (signal?.aborted) {
      this.host.registry.release();
      return Promise.reject(new RequestAbortedError(definition.name, signal.reason));
    }
    const result = new Promise<unknown>((resolve, reject) => {
      let timer: LongTimer | undefined;
      let holding = true;
      const onAbort = () => {
        if (this.waiters.get(correlationId) !== waiter) return;
        this.waiters.delete(correlationId);
        waiter.reject(
          new RequestAbortedError(
            definition.name,
            signal?.reason,
            'the continuation still runs when the reply comes',
          ),
        );
      };
      // Every way out of the wait comes here once: the slot goes back as the waiter leaves.
      const done = () => {
        timer?.clear();
        signal?.removeEventListener('abort', onAbort);
        if (holding) {
          holding = false;
          this.host.registry.release();
        }
      };
      const waiter: Waiter = {
        continuation: name,
        messageType: definition.name,
        timeoutMs: asked.timeoutMs,
        resolve: (value) => {
          done();
          resolve(value);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      // Before the commit: the reply can come as soon as the message leaves.
      this.waiters.set(correlationId, waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      // A safety net only: the deadline itself is the durable timeout message.
      timer = setLongTimeout(() => {
        if (this.waiters.get(correlationId) !== waiter) return;
        this.waiters.delete(correlationId);
        waiter.reject(new RequestTimeoutError(definition.name, asked.timeoutMs, correlationId));
      }, timeoutMs + awaitGraceMs);
    });
    this.host
      .transaction((scope) =>
        sendDurableRequest(this.host, this.continuations, name, scope, definition, asked.payload, {
          ...options,
          messageId: correlationId,
          timeoutMs,
        }),
      )
      .catch((error: unknown) => {
        const waiter = this.waiters.get(correlationId);
        this.waiters.delete(correlationId);
        waiter?.reject(error);
      });
    return result;
  }

  /** Another instance ran the continuation of a request this one sent. */
  told(correlationId: string, payload: unknown): void {
    const waiter = this.waiters.get(correlationId);
    if (waiter === undefined) return;
    const done = payload as { outcome?: ContinuationOutcome } | undefined;
    if (done?.outcome === undefined) return;
    this.waiters.delete(correlationId);
    settleWaiter(waiter, correlationId, done.outcome);
  }
}
