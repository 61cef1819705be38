import { PersistenceError } from '../errors.js';
import type { TransportDestination, TransportOperation } from '../transport/transport.js';

/** One operation as stored: the body in base64, so any JSON column or text field holds it. */
interface StoredOperation {
  readonly id: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly to: TransportDestination;
  readonly delayMs?: number;
}

/**
 * Encodes built transport operations for an outbox record: JSON text, bodies in base64. Every store
 * can keep it as it is; a dispatch from the record after a crash sends exactly these bytes.
 */
export function encodeOperations(operations: readonly TransportOperation[]): string {
  const stored: StoredOperation[] = operations.map(({ message, destination, delayMs }) => ({
    id: message.messageId,
    headers: message.headers,
    body: Buffer.from(
      message.body.buffer,
      message.body.byteOffset,
      message.body.byteLength,
    ).toString('base64'),
    to: destination,
    ...(delayMs !== undefined ? { delayMs } : {}),
  }));
  return JSON.stringify(stored);
}

/** Reads what `encodeOperations` wrote. A record that is not that fails loudly, never half-sends. */
export function decodeOperations(text: string): TransportOperation[] {
  let stored: unknown;
  try {
    stored = JSON.parse(text);
  } catch (cause) {
    throw new PersistenceError('An outbox record holds operations that are not JSON.', {
      cause,
    });
  }
  if (!Array.isArray(stored)) {
    throw new PersistenceError('An outbox record holds operations that are not a list.');
  }
  return stored.map((entry: StoredOperation) => {
    const body = Buffer.from(entry.body, 'base64');
    const message = {
      messageId: entry.id,
      headers: entry.headers,
      body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
    };
    return entry.delayMs !== undefined
      ? { message, destination: entry.to, delayMs: entry.delayMs }
      : { message, destination: entry.to };
  });
}
