import type { Endpoint, EndpointOptions, TransportCapabilities } from '@tidings/core';
import type { DescribeTransportOptions } from '../describe-transport.js';
import type { ScopeHelpers } from '../scope.js';

type EndpointExtras = Omit<EndpointOptions, 'name' | 'transport'>;

/** What every group of the conformance suite shares; made once by `describeTransport`. */
export interface SuiteContext {
  readonly options: DescribeTransportOptions;
  readonly caps: TransportCapabilities;
  /** `options.timeScale`, for waits of a group's own. */
  readonly scale: number;
  /** For `expect.poll`: how long a broker may take to deliver. */
  readonly wait: { readonly timeout: number; readonly interval: number };
  /** The running test's scope: made afresh before each test, so read it in a `beforeEach`. */
  current(): ScopeHelpers;
  /** Starts endpoint 'Server' with `setup` (its handlers). */
  server(setup: (endpoint: Endpoint) => void, extra?: EndpointExtras): Promise<Endpoint>;
  /** Starts endpoint 'Client', routing Ping, Work and Big to 'Server'. */
  client(extra?: EndpointExtras, setup?: (endpoint: Endpoint) => void): Promise<Endpoint>;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
