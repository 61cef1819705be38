import { type Endpoint, EndpointStoppedError, type LongTimer, setLongTimeout } from '@tidings/core';
import { followSignal } from './follow-signal.js';

/**
 * A request ended because its server closed before the reply arrived: once `drainTimeoutMs` has
 * passed after close began, the requests still waiting end with this error, so closing never waits
 * out their timeouts. An `EndpointStoppedError` (503): this server is going away; another may answer.
 */
export class ServerClosingError extends EndpointStoppedError {
  constructor(endpointName: string, messageType: string, drainTimeoutMs: number) {
    super(endpointName);
    this.message = `The server closed before the reply to '${messageType}' arrived (it waits ${drainTimeoutMs} ms, drainTimeoutMs, for replies on close). Try again.`;
  }
}

/** The requests one plugin registration has in flight, and their end when its server closes. */
export class Drain {
  private readonly inFlight = new Map<AbortController, string>();
  private readonly idle: Array<() => void> = [];
  private timer: LongTimer | undefined;
  private deadlinePassed = false;

  constructor(
    private readonly endpointName: string,
    private readonly timeoutMs: number,
  ) {}

  /** True once the server began to close. */
  get begun(): boolean {
    return this.timer !== undefined || this.deadlinePassed;
  }

  /** True once the drain deadline passed: a new request would outlive the server. */
  get closed(): boolean {
    return this.deadlinePassed;
  }

  /**
   * Tracks one request: its signal aborts at the drain deadline, or when `signal` (the caller's)
   * aborts, with its reason; call `done` when the request is over.
   */
  track(messageType: string, signal?: AbortSignal): { readonly signal: AbortSignal; done(): void } {
    const controller = new AbortController();
    const unfollow = followSignal(controller, signal);
    this.inFlight.set(controller, messageType);
    return {
      signal: controller.signal,
      done: () => {
        unfollow();
        this.inFlight.delete(controller);
        if (this.inFlight.size === 0) for (const resolve of this.idle.splice(0)) resolve();
      },
    };
  }

  /** The server began to close: requests still waiting in `timeoutMs` end with `ServerClosingError`. */
  begin(): void {
    if (this.timer !== undefined || this.deadlinePassed) return;
    // Chained: a drainTimeoutMs of 2^31 ms or more would fire at once with a plain timer.
    this.timer = setLongTimeout(() => {
      this.deadlinePassed = true;
      for (const [controller, messageType] of this.inFlight) {
        controller.abort(new ServerClosingError(this.endpointName, messageType, this.timeoutMs));
      }
    }, this.timeoutMs);
  }

  /** Resolves once no request is in flight (each got its reply, or ended at the deadline). */
  async settled(): Promise<void> {
    if (this.inFlight.size > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    this.timer?.clear();
  }
}

/** How many plugin registrations that manage each endpoint's lifecycle are ready and not closed. */
const managers = new WeakMap<Endpoint, number>();

/** A registration that manages `endpoint` became ready. */
export function addManager(endpoint: Endpoint): void {
  managers.set(endpoint, (managers.get(endpoint) ?? 0) + 1);
}

/**
 * A registration that manages `endpoint` closed and drained; true when it was the last, so the
 * endpoint may stop. One endpoint registered in several contexts (or servers) stops only once no
 * registration still has requests waiting on it.
 */
export function removeManager(endpoint: Endpoint): boolean {
  const left = Math.max(0, (managers.get(endpoint) ?? 1) - 1);
  managers.set(endpoint, left);
  return left === 0;
}
