import type { Endpoint, Transport, TransportCapabilities } from '@tidings/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createScope, type ScopeHelpers, type TestScope } from './scope.js';
import type { SuiteContext } from './suites/context.js';
import { describeDelayedDelivery } from './suites/delayed-delivery.js';
import { describeLifecycle } from './suites/lifecycle.js';
import { Big, Ping, Work } from './suites/messages.js';
import { describeOutboxInbox } from './suites/outbox-inbox.js';
import { describePublishSubscribe } from './suites/publish-subscribe.js';
import {
  describeErrorQueueKeepsPacked,
  describeRecoverability,
  describeReturningEventFromTwoEndpoints,
} from './suites/recoverability.js';
import { describeRequestReply } from './suites/request-reply.js';
import { describeSendAndReceive } from './suites/send-and-receive.js';

export interface DescribeTransportOptions {
  /** Shown in the test names. */
  readonly name: string;
  /**
   * Makes a transport. Called once per simulated process (each endpoint gets its own), so the
   * suite exercises separate connections. Transports made for the same scope must reach the same
   * queues (for an in-memory transport, return one shared instance per scope).
   */
  makeTransport(scope: TestScope): Transport | Promise<Transport>;
  /**
   * What the transport declares; groups that need a capability it lacks are skipped, never by
   * name. The suite checks the declaration against `transport.capabilities`.
   */
  readonly capabilities: TransportCapabilities;
  /** Deletes what a test left behind (its queues all start with `scope.id`). */
  cleanup?(scope: TestScope): Promise<void>;
  /**
   * Multiplies waits, for brokers that take longer to deliver.
   * @default 1
   */
  readonly timeScale?: number;
  /**
   * For a transport that packs bus headers into one `tidings.headers` entry (ADR 8): sends and
   * reads natively, past the transport, so the suite can check what a broker's own tools show.
   * Left out where headers travel one by one; the tests that need it are skipped.
   */
  readonly packed?: PackedHeadersAccess;
}

/** Native access to a queue for `DescribeTransportOptions.packed`. */
export interface PackedHeadersAccess {
  /** Sends `body` to `queue` with `entries` as its native headers, `tidings.headers` as given. */
  send(
    scope: TestScope,
    queue: string,
    entries: Readonly<Record<string, string>>,
    body: Uint8Array,
  ): Promise<void>;
  /**
   * The native headers, as text, of the latest message in `queue` whose `tidings.message-id`
   * entry is `messageId`, left there; undefined if there is none.
   */
  peek(
    scope: TestScope,
    queue: string,
    messageId: string,
  ): Promise<Record<string, string> | undefined>;
}

/** Registers the conformance suite for one transport. Call it at the top level of a test file. */
export function describeTransport(options: DescribeTransportOptions): void {
  const caps = options.capabilities;
  const scale = options.timeScale ?? 1;
  const wait = { timeout: 20_000 * scale, interval: 20 };

  describe(`transport conformance: ${options.name}`, () => {
    let t: ScopeHelpers;
    beforeEach(() => {
      t = createScope((scope) => options.makeTransport(scope));
    });
    afterEach(async () => {
      await t.dispose();
      await options.cleanup?.(t.scope);
    });

    const server = (setup: (endpoint: Endpoint) => void, extra = {}) =>
      t.started('Server', extra, setup);
    const client = (extra = {}, setup?: (endpoint: Endpoint) => void) =>
      t.started(
        'Client',
        {
          routes: {
            [Ping.name]: t.name('Server'),
            [Work.name]: t.name('Server'),
            [Big.name]: t.name('Server'),
          },
          ...extra,
        },
        setup,
      );

    it('declares the capabilities it has', async () => {
      const transport = await options.makeTransport(t.scope);
      t.scope.transports.push(transport);
      expect(transport.capabilities).toEqual(caps);
    });

    // Each group registers its describe block; the order here is the order they run in.
    const suite: SuiteContext = { options, caps, scale, wait, current: () => t, server, client };
    describeSendAndReceive(suite);
    describePublishSubscribe(suite);
    describeRequestReply(suite);
    describeOutboxInbox(suite);
    describeRecoverability(suite);
    describeErrorQueueKeepsPacked(suite);
    describeReturningEventFromTwoEndpoints(suite);
    describeDelayedDelivery(suite);
    describeLifecycle(suite);
  });
}
