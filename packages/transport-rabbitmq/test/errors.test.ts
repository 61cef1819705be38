import {
  ConfigurationError,
  DestinationNotFoundError,
  silentLogger,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core';
import { describe, expect, it } from 'vitest';
import { mapRabbitMqError } from '../src/errors.ts';
import { createRabbitMqTransport } from '../src/index.ts';
import { brokerUrl } from './broker.ts';

const secret = 'hunter2-secret';
const context = { operation: "send to 'Sales'", destination: 'Sales', secrets: [secret] };

function amqpError(code: number, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('mapRabbitMqError', () => {
  it('maps 404 on a destination to DestinationNotFoundError', () => {
    const mapped = mapRabbitMqError(amqpError(404, 'NOT_FOUND - no queue'), context);
    expect(mapped).toBeInstanceOf(DestinationNotFoundError);
    expect(mapped.code).toBe('TIDINGS_DESTINATION_NOT_FOUND');
    expect(mapped.message).toContain('Sales');
  });

  it('maps 404 without a destination to a non-retryable TransportError', () => {
    const mapped = mapRabbitMqError(amqpError(404, 'NOT_FOUND - no exchange'), {
      operation: 'bind',
      secrets: [],
    });
    expect(mapped).toBeInstanceOf(TransportError);
    expect(mapped.isRetryable).toBe(false);
  });

  it('maps access refused to a non-retryable TransportError that says what to check', () => {
    const mapped = mapRabbitMqError(
      new Error(
        'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "login refused"',
      ),
      context,
    );
    expect(mapped).toBeInstanceOf(TransportError);
    expect(mapped.isRetryable).toBe(false);
    expect(mapped.message).toMatch(/password/);
  });

  it('maps 406 PRECONDITION_FAILED to a non-retryable TransportError naming the usual cause', () => {
    const mapped = mapRabbitMqError(
      amqpError(406, "PRECONDITION_FAILED - inequivalent arg 'x-queue-type'"),
      context,
    );
    expect(mapped).toBeInstanceOf(TransportError);
    expect(mapped.isRetryable).toBe(false);
    expect(mapped.message).toMatch(/other settings/);
  });

  it('maps socket failures, forced closes and lost channels to retryable TransportUnavailableError', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5672'), {
      code: 'ECONNREFUSED',
    });
    for (const error of [
      refused,
      amqpError(320, 'CONNECTION_FORCED - broker forced connection closure'),
      new Error('channel closed'),
      Object.assign(new Error('Channel closed'), { name: 'IllegalOperationError' }),
    ]) {
      const mapped = mapRabbitMqError(error, context);
      expect(mapped).toBeInstanceOf(TransportUnavailableError);
      expect(mapped.isRetryable).toBe(true);
    }
  });

  it('maps a broker nack to a retryable TransportError', () => {
    const mapped = mapRabbitMqError(new Error('message nacked'), context);
    expect(mapped).toBeInstanceOf(TransportError);
    expect(mapped.isRetryable).toBe(true);
  });

  it('keeps secrets out of the message and the cause', () => {
    const native = new Error(`cannot reach amqp://app:${secret}@host`);
    const mapped = mapRabbitMqError(native, context);
    expect(mapped.message).not.toContain(secret);
    expect(String((mapped.cause as Error).message)).not.toContain(secret);
    expect(String((mapped.cause as Error).stack)).not.toContain(secret);
  });

  it('keeps the password and the connection string out of the message and every cause level', () => {
    const password = 'p4ss-w0rd-7c1e';
    const connectionString = `amqp://app:${password}@rabbit.internal:5672/prod`;
    const secrets = [password, connectionString];
    const root = Object.assign(new Error(`connect ECONNREFUSED ${connectionString}`), {
      code: 'ECONNREFUSED',
    });
    const wrapped = new Error(`could not open ${connectionString} (password ${password})`, {
      cause: new Error(`handshake with ${connectionString} failed`, { cause: root }),
    });
    const mapped = mapRabbitMqError(wrapped, { operation: 'connect', secrets });
    // Still classified by the innermost cause.
    expect(mapped).toBeInstanceOf(TransportUnavailableError);
    const texts: string[] = [mapped.message, String(mapped.stack)];
    let cause: unknown = mapped.cause;
    let levels = 0;
    while (cause !== undefined) {
      levels++;
      texts.push(String((cause as Error).message), String((cause as Error).stack));
      cause = (cause as Error).cause;
    }
    expect(levels).toBe(3);
    for (const text of texts) {
      expect(text).not.toContain(password);
      expect(text).not.toContain('app:p4ss');
    }
    // The natives themselves are untouched.
    expect(root.message).toContain(password);
  });

  it('passes Tidings errors through unchanged', () => {
    const original = new DestinationNotFoundError('Sales');
    expect(mapRabbitMqError(original, context)).toBe(original);
  });
});

describe('createRabbitMqTransport errors', () => {
  const topology = { endpointName: 'never', errorQueue: 'never-error', subscriptions: [] };

  it('refuses bad options with ConfigurationError and never echoes the password', () => {
    expect(() => createRabbitMqTransport({ url: '' })).toThrow(ConfigurationError);
    expect(() => createRabbitMqTransport({ url: `http://u:${secret}@host` })).toThrow(
      /amqp:\/\/ or amqps:\/\//,
    );
    try {
      createRabbitMqTransport({ url: `http://u:${secret}@host` });
    } catch (error) {
      expect(String((error as Error).message)).not.toContain(secret);
    }
    expect(() =>
      createRabbitMqTransport({ url: brokerUrl, queueType: 'stream' as 'classic' }),
    ).toThrow(ConfigurationError);
    expect(() => createRabbitMqTransport({ url: brokerUrl, unavailableTimeoutMs: 0 })).toThrow(
      ConfigurationError,
    );
  });

  it('a wrong password fails to open with TransportError, without the password', async () => {
    const url = new URL(brokerUrl);
    url.password = secret;
    const transport = createRabbitMqTransport({ url: url.toString() });
    const error = await transport.openEndpoint(topology, { logger: silentLogger }).then(
      () => undefined,
      (e: unknown) => e as TransportError,
    );
    expect(error).toBeInstanceOf(TransportError);
    expect(error?.isRetryable).toBe(false);
    expect(error?.message).toContain('***');
    expect(error?.message).not.toContain(secret);
    expect(JSON.stringify(error?.cause ?? null)).not.toContain(secret);
  });

  it('an unreachable broker fails to open with TransportUnavailableError', async () => {
    const transport = createRabbitMqTransport({ url: `amqp://u:${secret}@127.0.0.1:1` });
    const error = await transport.openEndpoint(topology, { logger: silentLogger }).then(
      () => undefined,
      (e: unknown) => e as TransportError,
    );
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect(error?.message).not.toContain(secret);
  });

  it('declares delivery counts only for quorum queues', () => {
    expect(createRabbitMqTransport({ url: brokerUrl }).capabilities.deliveryCount).toBe(true);
    expect(
      createRabbitMqTransport({ url: brokerUrl, queueType: 'classic' }).capabilities.deliveryCount,
    ).toBe(false);
    expect(
      createRabbitMqTransport({ url: brokerUrl, delayedDelivery: false }).capabilities
        .delayedDelivery,
    ).toBe(false);
  });
});
