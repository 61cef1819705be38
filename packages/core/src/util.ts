import { randomUUID } from 'node:crypto';

/** A new message id (UUID v4; crypto.randomUUID batches entropy so this stays cheap). */
export function newId(): string {
  return randomUUID();
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
