import type { StandardSchemaV1 } from '@standard-schema/spec';
import { ConfigurationError } from '../errors.js';

/**
 * A message type: a stable name on the wire plus, optionally, a Standard Schema (zod, valibot,
 * arktype, ...) that validates incoming payloads at runtime. `T` is the payload type.
 */
export interface MessageDefinition<T = unknown> {
  readonly name: string;
  readonly schema: StandardSchemaV1<unknown, T> | undefined;
  /** Type-only marker; always undefined at runtime. */
  readonly __payload?: T;
}

/** The payload type of a message definition. */
export type PayloadOf<D> = D extends MessageDefinition<infer T> ? T : never;

const namePattern = /^[A-Za-z0-9_.:-]{1,200}$/;

/** Defines a message type checked only at compile time. */
export function defineMessage<T>(name: string): MessageDefinition<T>;
/** Defines a message type whose incoming payloads are validated by `schema`. */
export function defineMessage<S extends StandardSchemaV1>(
  name: string,
  schema: S,
): MessageDefinition<StandardSchemaV1.InferOutput<S>>;
export function defineMessage(name: string, schema?: StandardSchemaV1): MessageDefinition {
  if (typeof name !== 'string' || !namePattern.test(name)) {
    throw new ConfigurationError(
      `Invalid message name ${JSON.stringify(name)}: use 1-200 letters, digits, '.', '_', ':' or '-' (e.g. 'sales.PlaceOrder').`,
    );
  }
  if (schema !== undefined && typeof schema?.['~standard']?.validate !== 'function') {
    throw new ConfigurationError(
      `The schema of '${name}' is not a Standard Schema (no '~standard.validate'). Use zod, valibot, arktype or another Standard Schema library.`,
    );
  }
  return Object.freeze({ name, schema });
}
