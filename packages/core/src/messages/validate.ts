import type { StandardSchemaV1 } from '@standard-schema/spec';
import { ValidationError } from '../errors.js';
import type { MessageDefinition } from './define-message.js';

/** Validates a payload with the definition's schema (if any) and returns the schema's output. */
export async function validatePayload(
  definition: MessageDefinition,
  payload: unknown,
): Promise<unknown> {
  const schema = definition.schema;
  if (schema === undefined) return payload;
  let result = schema['~standard'].validate(payload);
  if (result instanceof Promise) result = await result;
  if (result.issues) {
    throw new ValidationError(
      definition.name,
      result.issues.map((issue: StandardSchemaV1.Issue) => ({
        message: issue.message,
        ...(issue.path
          ? {
              path: issue.path.map((p) =>
                typeof p === 'object' && p !== null && 'key' in p ? p.key : p,
              ),
            }
          : {}),
      })),
    );
  }
  return result.value;
}
