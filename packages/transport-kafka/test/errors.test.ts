import { createServer } from 'node:net';
import {
  createEndpoint,
  DestinationNotFoundError,
  TransportError,
  TransportUnavailableError,
  UsageError,
} from '@tidings/core';
import { recordingLogger } from '@tidings/transport-tests';
import {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSRequestTimeoutError,
  KafkaJSSASLAuthenticationError,
} from 'kafkajs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createKafkaTransport, mapKafkaError } from '../src/index.ts';
import { sleep } from './helpers.ts';

/** A port on 127.0.0.1 that nothing listens on: connecting to it is refused at once. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

// kafkajs's typings declare fewer constructor arguments than its classes take.
type Native = new (...args: unknown[]) => Error;
const protocolError = (type: string, retriable: boolean) =>
  new (KafkaJSProtocolError as unknown as Native)({
    message: `broker said ${type}`,
    type,
    code: 1,
    retriable,
  });

describe('mapKafkaError', () => {
  it('maps an unknown topic on a queue send to DestinationNotFoundError', () => {
    const error = mapKafkaError(protocolError('UNKNOWN_TOPIC_OR_PARTITION', true), {
      operation: 'produce',
      destination: 'Sales',
    });
    expect(error).toBeInstanceOf(DestinationNotFoundError);
    expect((error as DestinationNotFoundError).destination).toBe('Sales');
  });

  it('follows "retries exceeded" down to the connection error and calls it unavailable', () => {
    const connection = new KafkaJSConnectionError(
      'Connection error: connect ECONNREFUSED 127.0.0.1:1',
    );
    const exceeded = new KafkaJSNumberOfRetriesExceeded(connection, {
      retryCount: 5,
      retryTime: 100,
    });
    const error = mapKafkaError(exceeded, { operation: 'connect' });
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect(error.isRetryable).toBe(true);
    expect(error.message).toContain('ECONNREFUSED');
    expect(error.cause).toBe(exceeded);
  });

  it('calls request timeouts unavailable (retryable)', () => {
    const error = mapKafkaError(new KafkaJSRequestTimeoutError('Request Produce timed out'), {
      operation: 'produce',
    });
    expect(error).toBeInstanceOf(TransportUnavailableError);
  });

  it('size and authorization failures are not retryable', () => {
    const large = mapKafkaError(protocolError('MESSAGE_TOO_LARGE', false), {
      operation: 'produce',
    });
    expect(large).toBeInstanceOf(TransportError);
    expect(large.isRetryable).toBe(false);
    expect(large.message).toContain('max.message.bytes');
    const denied = mapKafkaError(protocolError('TOPIC_AUTHORIZATION_FAILED', false), {
      operation: 'produce',
    });
    expect(denied).toBeInstanceOf(TransportError);
    expect(denied.isRetryable).toBe(false);
  });

  it('a retriable broker error (leader moved) is unavailable; a non-retriable one is not', () => {
    expect(
      mapKafkaError(protocolError('NOT_LEADER_FOR_PARTITION', true), { operation: 'produce' }),
    ).toBeInstanceOf(TransportUnavailableError);
    const other = mapKafkaError(
      new (KafkaJSNonRetriableError as unknown as Native)('Invalid topic'),
      { operation: 'x' },
    );
    expect(other).toBeInstanceOf(TransportError);
    expect(other.isRetryable).toBe(false);
  });

  it('keeps secrets out of messages', () => {
    const error = mapKafkaError(
      new (KafkaJSSASLAuthenticationError as unknown as Native)(
        'SASL PLAIN authentication failed for s3cr3t-pass',
      ),
      { operation: 'connect', secrets: ['s3cr3t-pass'] },
    );
    expect(error).toBeInstanceOf(TransportError);
    expect(error.isRetryable).toBe(false);
    expect(error.message).not.toContain('s3cr3t-pass');
    expect(error.message).toContain('***');
  });

  it('keeps a password in the message and in a nested cause out of the message and every cause', () => {
    const password = 'pw-9f2c-secret';
    // kafkajs's shape: "retries exceeded" around a SASL failure around the socket's error.
    const socket = new Error(`handshake with user:${password}@broker failed`);
    const sasl = new (KafkaJSSASLAuthenticationError as unknown as Native)(
      `SASL PLAIN authentication failed for ${password}`,
      { cause: socket },
    );
    const exceeded = new KafkaJSNumberOfRetriesExceeded(sasl, { retryCount: 1, retryTime: 10 });
    const error = mapKafkaError(exceeded, { operation: 'connect', secrets: [password] });
    expect(error).toBeInstanceOf(TransportError);
    expect(error.isRetryable).toBe(false);
    expect(error.message).not.toContain(password);
    const levels: unknown[] = [];
    for (let cause: unknown = error.cause; cause !== undefined; ) {
      levels.push(cause);
      const { originalError, cause: next } = cause as { originalError?: unknown; cause?: unknown };
      cause = originalError ?? next;
    }
    expect(levels.length).toBeGreaterThanOrEqual(2);
    for (const level of levels) {
      expect(String((level as Error).message)).not.toContain(password);
      expect(String((level as Error).stack)).not.toContain(password);
    }
  });

  it('keeps configured broker addresses out of a failed produce', () => {
    const broker = '10.1.2.3:9093';
    const refused = new KafkaJSConnectionError(`Connection error: connect ECONNREFUSED ${broker}`);
    const error = mapKafkaError(refused, {
      operation: 'produce 1 record(s)',
      secrets: ['hunter2', broker],
    });
    expect(error).toBeInstanceOf(TransportUnavailableError);
    expect(error.message).toContain('ECONNREFUSED');
    expect(error.message).not.toContain(broker);
    expect(String((error.cause as Error).message)).not.toContain(broker);
  });

  it('passes Tidings errors through and wraps anything else', () => {
    const own = new UsageError('mine');
    expect(mapKafkaError(own, { operation: 'x' })).toBe(own);
    const odd = mapKafkaError('a string', { operation: 'x' });
    expect(odd).toBeInstanceOf(TransportError);
    expect(odd.message).toContain('a string');
  });
});

describe('errors from a real connection', () => {
  it('an unreachable cluster fails openEndpoint with TransportUnavailableError, the password redacted', async () => {
    const transport = createKafkaTransport({
      brokers: ['127.0.0.1:1'],
      retries: 0,
      connectionTimeoutMs: 500,
      connectTimeoutMs: 500,
      sasl: { mechanism: 'plain', username: 'u', password: 'hunter2-secret' },
    });
    const logger = recordingLogger();
    const opening = transport.openEndpoint(
      { endpointName: 'x', errorQueue: 'x-error', subscriptions: [] },
      { logger },
    );
    await expect(opening).rejects.toBeInstanceOf(TransportUnavailableError);
    await expect(opening).rejects.not.toThrow('hunter2-secret');
    await transport.close();
    expect(logger.lines.length).toBeGreaterThan(0);
    expect(logger.lines.filter((line) => line.includes('hunter2-secret'))).toEqual([]);
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('a wrong broker port fails start with one clear error; kafkajs logs only at debug, to the logger, and not after', async () => {
    const port = await closedPort();
    const consoleLines = (['log', 'info', 'warn', 'error', 'debug'] as const).map((method) =>
      vi.spyOn(console, method).mockImplementation(() => {}),
    );
    const logger = recordingLogger();
    const endpoint = createEndpoint({
      name: 'WrongPort',
      logger,
      transport: createKafkaTransport({ brokers: [`127.0.0.1:${port}`], connectTimeoutMs: 1_500 }),
    });

    const failure = await endpoint.start().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(TransportUnavailableError);
    const message = (failure as Error).message;
    expect(message).toContain('connectTimeoutMs');
    // Where the brokers are is configuration, not something to show whoever sees the error.
    expect(message).not.toContain(String(port));
    const atFailure = logger.lines.length;
    expect(logger.lines.filter((line) => line.includes('kafkajs'))).not.toEqual([]);
    expect(
      logger.lines.filter((line) => line.includes('kafkajs') && !line.startsWith('debug ')),
    ).toEqual([]);

    // Longer than kafkajs's own retries would go on: nothing is tried, or logged, after the error.
    await sleep(3_000);
    expect(logger.lines.slice(atFailure)).toEqual([]);
    for (const spy of consoleLines) expect(spy).not.toHaveBeenCalled();
  });
});
