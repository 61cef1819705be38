import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConfigurationError,
  DestinationNotFoundError,
  silentLogger,
  TidingsError,
  TransportError,
  TransportUnavailableError,
} from '@tidings/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLearningTransport, mapLearningError } from '../src/index.ts';

const fsError = (code: string) => Object.assign(new Error(`${code}: failed`), { code });

describe('mapLearningError', () => {
  it('ENOENT on the destination queue is DestinationNotFoundError', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tidings-err-'));
    try {
      const real = await rename(join(dir, 'nope'), join(dir, 'missing', 'x')).catch((e) => e);
      const mapped = mapLearningError(real, { operation: 'deliver', destination: 'Sales' });
      expect(mapped).toBeInstanceOf(DestinationNotFoundError);
      expect(mapped.code).toBe('TIDINGS_DESTINATION_NOT_FOUND');
      expect((mapped as DestinationNotFoundError).destination).toBe('Sales');
      expect(mapped.cause).toBe(real);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ENOENT elsewhere is a TransportError that suggests the root directory vanished', () => {
    const mapped = mapLearningError(fsError('ENOENT'), { operation: 'list a queue', path: '/x/q' });
    expect(mapped).toBeInstanceOf(TransportError);
    expect(mapped.message).toContain('/x/q');
    expect(mapped.message).toContain('root directory');
  });

  it('a full disk is a retryable TransportError', () => {
    for (const code of ['ENOSPC', 'EDQUOT']) {
      const mapped = mapLearningError(fsError(code), { operation: 'write a message' });
      expect(mapped).toBeInstanceOf(TransportError);
      expect(mapped.isRetryable).toBe(true);
      expect(mapped.message).toContain('disk is full');
    }
  });

  it('permission errors are not retryable and say what access is needed', () => {
    for (const code of ['EACCES', 'EPERM']) {
      const mapped = mapLearningError(fsError(code), { operation: 'create a queue', path: '/r/q' });
      expect(mapped).toBeInstanceOf(TransportError);
      expect(mapped.isRetryable).toBe(false);
      expect(mapped.message).toContain('permission denied');
      expect(mapped.message).toContain('read and write access');
    }
    expect(mapLearningError(fsError('EROFS'), { operation: 'x' }).message).toContain('read-only');
  });

  it('running out of file handles is TransportUnavailableError (retryable)', () => {
    const mapped = mapLearningError(fsError('EMFILE'), { operation: 'read a message' });
    expect(mapped).toBeInstanceOf(TransportUnavailableError);
    expect(mapped.isRetryable).toBe(true);
  });

  it('anything else is a TransportError with the code; Tidings errors pass through', () => {
    const mapped = mapLearningError(fsError('EIO'), { operation: 'read a message' });
    expect(mapped).toBeInstanceOf(TransportError);
    expect(mapped.message).toContain('EIO');
    expect(mapLearningError('weird', { operation: 'x' })).toBeInstanceOf(TransportError);
    const original = new ConfigurationError('bad');
    expect(mapLearningError(original, { operation: 'x' })).toBe(original);
  });
});

describe('errors from the transport', () => {
  let rootDir: string;
  beforeEach(() => {
    rootDir = mkdtempSync(join(tmpdir(), 'tidings-err-'));
  });
  afterEach(() => rmSync(rootDir, { recursive: true, force: true }));

  it('dispatch to a queue that does not exist rejects with DestinationNotFoundError', async () => {
    const transport = createLearningTransport({ rootDir });
    const connection = await transport.openEndpoint(
      { endpointName: 'Sender', errorQueue: 'error', subscriptions: [] },
      { logger: silentLogger },
    );
    const message = { messageId: 'm1', headers: {}, body: new Uint8Array(0) };
    const error = await connection
      .dispatch([{ message, destination: { kind: 'queue', queue: 'Nobody' } }])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DestinationNotFoundError);
    expect((error as DestinationNotFoundError).destination).toBe('Nobody');
    await connection.close();
  });

  it('a queue deleted after a first send fails the next send with DestinationNotFoundError', async () => {
    const transport = createLearningTransport({ rootDir });
    const receiver = await transport.openEndpoint(
      { endpointName: 'Gone', inputQueue: 'Gone', errorQueue: 'error', subscriptions: [] },
      { logger: silentLogger },
    );
    const sender = await createLearningTransport({ rootDir }).openEndpoint(
      { endpointName: 'Sender', errorQueue: 'error', subscriptions: [] },
      { logger: silentLogger },
    );
    const operation = {
      message: { messageId: 'm1', headers: {}, body: new Uint8Array(0) },
      destination: { kind: 'queue', queue: 'Gone' },
    } as const;
    await sender.dispatch([operation]);
    await receiver.close();
    rmSync(join(rootDir, 'Gone'), { recursive: true, force: true });
    await expect(sender.dispatch([operation])).rejects.toBeInstanceOf(DestinationNotFoundError);
    await expect(sender.dispatch([operation])).rejects.toBeInstanceOf(DestinationNotFoundError);
    expect(readdirSync(join(rootDir, '.tmp'))).toEqual([]);
    await sender.close();
  });

  it('a root directory that cannot be created fails openEndpoint with a TidingsError', async () => {
    // A regular file where a directory should be: fails for every user, root included.
    const blocker = join(rootDir, 'file');
    await import('node:fs/promises').then((fs) => fs.writeFile(blocker, ''));
    const transport = createLearningTransport({ rootDir: join(blocker, 'root') });
    const error = await transport
      .openEndpoint(
        { endpointName: 'A', errorQueue: 'error', subscriptions: [] },
        {
          logger: silentLogger,
        },
      )
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TidingsError);
    expect((error as TidingsError).message).toContain(join(blocker, 'root'));
  });

  it('rejects invalid options with ConfigurationError', () => {
    expect(() => createLearningTransport({ pollIntervalMs: 0 })).toThrow(ConfigurationError);
    expect(() => createLearningTransport({ maxMessageSizeBytes: 1.5 })).toThrow(ConfigurationError);
    expect(() => createLearningTransport({ rootDir: '' })).toThrow(ConfigurationError);
    expect(() => createLearningTransport({ leaseMs: 100, housekeepingIntervalMs: 50 })).toThrow(
      /leaseMs/,
    );
    expect(() => createLearningTransport({ instanceQueueExpiryMs: 1000 })).toThrow(
      /instanceQueueExpiryMs/,
    );
  });
});
