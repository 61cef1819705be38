import { ConfigurationError, checkWholeNumber, type Endpoint } from '@tidings/core';

export interface TidingsPluginOptions {
  /** The endpoint routes send their requests through. Create it with handlers, routes, etc. */
  readonly endpoint: Endpoint;
  /**
   * Start the endpoint when the server gets ready (before it listens) and stop it when the server
   * closes. Set `false` when the endpoint outlives the server (you start and stop it yourself).
   * @default true
   */
  readonly manageLifecycle?: boolean;
  /**
   * How long a request waits for its reply, for routes that set no `config.tidings.timeoutMs`.
   * @default the endpoint's `requestTimeoutMs` (30 s unless configured)
   */
  readonly timeoutMs?: number;
  /**
   * On close, how long web requests still awaiting their reply may wait for it; those left then
   * end with `ServerClosingError` (a 503), whatever their own timeout, and the endpoint stops.
   * @default 10_000
   */
  readonly drainTimeoutMs?: number;
  /**
   * Check payloads against the message's schema before sending (a failure answers 400).
   * @default true
   */
  readonly validate?: boolean;
}

/** Per-route settings, given as `config: { tidings: { ... } }` in the route options. */
export interface TidingsRouteOptions {
  /**
   * How long requests from this route wait for their reply. Overrides the plugin's `timeoutMs`.
   * Not a positive whole number: the route's registration fails with `ConfigurationError`.
   */
  readonly timeoutMs?: number;
}

export const tidingsPluginDefaults = {
  manageLifecycle: true,
  drainTimeoutMs: 10_000,
  validate: true,
} as const;

export interface ResolvedPluginOptions {
  readonly endpoint: Endpoint;
  readonly manageLifecycle: boolean;
  readonly timeoutMs: number | undefined;
  readonly drainTimeoutMs: number;
  readonly validate: boolean;
}

export function checkTimeout(name: string, value: number | undefined): number | undefined {
  return value === undefined ? undefined : checkWholeNumber(name, value);
}

export function resolvePluginOptions(options: TidingsPluginOptions): ResolvedPluginOptions {
  const endpoint = options?.endpoint;
  if (endpoint === undefined || typeof endpoint.request !== 'function') {
    throw new ConfigurationError(
      'The Tidings plugin needs an endpoint: app.register(tidingsPlugin, { endpoint: createEndpoint({ ... }) }).',
    );
  }
  return {
    endpoint,
    manageLifecycle: options.manageLifecycle ?? tidingsPluginDefaults.manageLifecycle,
    timeoutMs: checkTimeout('timeoutMs', options.timeoutMs),
    drainTimeoutMs:
      checkTimeout('drainTimeoutMs', options.drainTimeoutMs) ??
      tidingsPluginDefaults.drainTimeoutMs,
    validate: options.validate ?? tidingsPluginDefaults.validate,
  };
}
