import { inspect } from 'node:util';
import { ServiceBusError, type ServiceBusErrorCode } from '@azure/service-bus';
import {
  ConfigurationError,
  DestinationNotFoundError,
  MessageTooLargeError,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core';
import { describe, expect, it } from 'vitest';
import { createAzureServiceBusTransport, mapAzureServiceBusError } from '../src/index.ts';

const KEY = 'c2VjcmV0LWtleS12YWx1ZQ==';
const CONNECTION = `Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=${KEY}`;
const context = {
  operation: "send to 'orders'",
  destination: 'orders',
  secrets: [CONNECTION, KEY],
};
const native = (code: ServiceBusErrorCode, message = `${code} happened`) =>
  new ServiceBusError(message, code);

describe('mapAzureServiceBusError', () => {
  it.each([
    ['ServiceBusy', TransportUnavailableError, true],
    ['ServiceTimeout', TransportUnavailableError, true],
    ['ServiceCommunicationProblem', TransportUnavailableError, true],
    ['MessageLockLost', TransportError, true],
    ['SessionLockLost', TransportError, true],
    ['QuotaExceeded', TransportError, true],
    ['UnauthorizedAccess', TransportError, false],
    ['MessagingEntityDisabled', TransportError, false],
    ['MessageSizeExceeded', TransportError, false],
  ] as const)('%s → %s, retryable %s', (code, type, retryable) => {
    const mapped = mapAzureServiceBusError(native(code), context);
    expect(mapped).toBeInstanceOf(type);
    expect(mapped.isRetryable).toBe(retryable);
    expect(mapped.message).toContain(code);
    expect(mapped.cause).toBeInstanceOf(ServiceBusError);
  });

  it('maps MessagingEntityNotFound to DestinationNotFoundError naming the destination', () => {
    const mapped = mapAzureServiceBusError(native('MessagingEntityNotFound'), context);
    expect(mapped).toBeInstanceOf(DestinationNotFoundError);
    expect((mapped as DestinationNotFoundError).destination).toBe('orders');
    expect(mapped.isRetryable).toBe(false);
  });

  it('keeps the retryable flag of a general error', () => {
    const retryable = native('GeneralError');
    retryable.retryable = true;
    expect(mapAzureServiceBusError(retryable, context).isRetryable).toBe(true);
    const final = native('GeneralError');
    final.retryable = false;
    expect(mapAzureServiceBusError(final, context).isRetryable).toBe(false);
  });

  it('maps network errors to TransportUnavailableError', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5672'), {
      code: 'ECONNREFUSED',
    });
    const mapped = mapAzureServiceBusError(refused, context);
    expect(mapped).toBeInstanceOf(TransportUnavailableError);
    expect(mapped.isRetryable).toBe(true);
  });

  it('never puts the connection string or key in the message', () => {
    const leaky = native('UnauthorizedAccess', `bad token for ${CONNECTION} (key ${KEY})`);
    const mapped = mapAzureServiceBusError(leaky, context);
    expect(mapped.message).not.toContain(KEY);
    expect(mapped.message).not.toContain(CONNECTION);
    expect(mapped.message).toContain('***');
  });

  it.each([
    ['a ServiceBusError', native('UnauthorizedAccess', `bad token for ${CONNECTION}`)],
    ['an error from outside the AMQP side', new Error(`request to ${CONNECTION} failed`)],
  ])(
    'cuts the connection string and key out of the message and every level of cause of %s',
    (_, outer) => {
      const root = Object.assign(new Error(`signature for key ${KEY} refused`), {
        code: 'ECONNRESET',
      });
      const middle = new Error(`while connecting with ${CONNECTION}`, { cause: root });
      Object.assign(outer, { cause: middle });
      const mapped = mapAzureServiceBusError(outer, context);
      const levels: unknown[] = [];
      for (let level: unknown = mapped; level !== undefined; ) {
        levels.push(level);
        level = (level as { cause?: unknown }).cause;
      }
      // The mapped error, the thrown error, the middle one and the root: each one kept, redacted.
      expect(levels).toHaveLength(4);
      for (const level of levels) {
        const { message, stack } = level as Error;
        for (const secret of [CONNECTION, KEY]) {
          expect(message).not.toContain(secret);
          expect(String(stack)).not.toContain(secret);
        }
      }
      expect((levels[3] as Error).message).toBe('signature for key *** refused');
      expect((levels[3] as { code?: string }).code).toBe('ECONNRESET');
      expect(inspect(mapped, { depth: 20 })).not.toContain(KEY);
    },
  );

  it("maps the SDK's AggregateError of spent retries by its last attempt's error", () => {
    const spent = new AggregateError(
      [native('ServiceBusy'), native('ServiceBusy', 'still busy')],
      '',
    );
    const mapped = mapAzureServiceBusError(spent, context);
    expect(mapped).toBeInstanceOf(TransportUnavailableError);
    expect(mapped.isRetryable).toBe(true);
    expect(mapped.message).toMatch(/ServiceBusy.*still busy/);
  });

  it('passes Tidings errors through unchanged', () => {
    const tooLarge = new MessageTooLargeError('x', 10, 5, 'azure-service-bus');
    expect(mapAzureServiceBusError(tooLarge, context)).toBe(tooLarge);
  });
});

describe('options', () => {
  it.each([
    ['operationTimeoutMs', 1.5, 'a positive whole number'],
    // One timer per settlement: Node.js would fire a timer this long at once.
    ['operationTimeoutMs', 2 ** 31, 'at most 2147483647 ms (about 24.8 days)'],
    ['maxRetries', -1, 'a whole number of at least 0'],
    ['maxAutoLockRenewalDurationMs', -1, 'a whole number of at least 0'],
    ['maxCachedSenders', 0, 'a positive whole number'],
  ])(
    'refuses %s = %s when the transport is created, without the connection string',
    (name, value, expected) => {
      const create = () =>
        createAzureServiceBusTransport({ connectionString: CONNECTION, [name]: value });
      expect(create).toThrow(ConfigurationError);
      expect(create).toThrow(`${name} must be ${expected}, got ${value}.`);
      try {
        create();
      } catch (error) {
        expect(String(error)).not.toContain(KEY);
      }
    },
  );

  // Service Bus refuses these when the entity is created, or (the size) when a message is sent.
  it.each([
    ['maxMessageSizeBytes', 0, 'between 1 and 104857600'],
    ['maxMessageSizeBytes', 100 * 1024 * 1024 + 1, 'between 1 and 104857600'],
    ['instanceQueueAutoDeleteOnIdleMs', 299_999, 'at least 300000'],
    ['duplicateDetectionWindowMs', 19_999, 'between 20000 and 604800000'],
    ['duplicateDetectionWindowMs', 7 * 24 * 3_600_000 + 1, 'between 20000 and 604800000'],
    ['lockDurationMs', 4_999, 'between 5000 and 300000'],
    ['lockDurationMs', 300_001, 'between 5000 and 300000'],
  ])('refuses %s = %s, outside what Service Bus accepts', (name, value, expected) => {
    const create = () =>
      createAzureServiceBusTransport({ connectionString: CONNECTION, [name]: value });
    expect(create).toThrow(ConfigurationError);
    expect(create).toThrow(
      `${name} must be a whole number ${expected} (Service Bus's limit), got ${value}.`,
    );
  });

  it('accepts the limits themselves', () => {
    expect(() =>
      createAzureServiceBusTransport({
        connectionString: CONNECTION,
        maxMessageSizeBytes: 100 * 1024 * 1024,
        instanceQueueAutoDeleteOnIdleMs: 300_000,
        duplicateDetectionWindowMs: 20_000,
        lockDurationMs: 5_000,
      }),
    ).not.toThrow();
    expect(() =>
      createAzureServiceBusTransport({
        connectionString: CONNECTION,
        duplicateDetectionWindowMs: 7 * 24 * 3_600_000,
        lockDurationMs: 300_000,
      }),
    ).not.toThrow();
  });

  it('refuses administration options beside an installer of its own: they would do nothing', () => {
    const installer = {
      ensureQueue: async () => {},
      ensureTopic: async () => {},
      ensureSubscription: async () => {},
      deleteSubscription: async () => {},
    };
    expect(() =>
      createAzureServiceBusTransport({
        connectionString: CONNECTION,
        installer,
        administration: {},
      }),
    ).toThrow(/`administration` configures the default installer/);
  });

  it('accepts 0 retries and lock renewal turned off', () => {
    expect(() =>
      createAzureServiceBusTransport({
        connectionString: CONNECTION,
        maxRetries: 0,
        maxAutoLockRenewalDurationMs: 0,
      }),
    ).not.toThrow();
  });
});
