import { randomUUID } from 'node:crypto';
import { thrownMessage } from './thrown-value.js';

/** A new message id (UUID v4; crypto.randomUUID batches entropy so this stays cheap). */
export function newId(): string {
  return randomUUID();
}

/** An error's message for a log or a header; never throws, whatever was thrown. */
export function errorMessage(error: unknown): string {
  return thrownMessage(error);
}
