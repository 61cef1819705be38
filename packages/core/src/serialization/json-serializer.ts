import secureJsonParse from 'secure-json-parse';
import { DeserializationError, ForbiddenKeyError } from '../errors.js';
import { findForbiddenKey } from './forbidden-keys.js';
import type { Serializer } from './serializer.js';

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * JSON with UTF-8 bodies. Parsing refuses `__proto__` and `constructor.prototype` keys outright
 * (secure-json-parse) instead of stripping them, so a hostile message lands in the error queue
 * where someone can see it. Serializing refuses them too (`ForbiddenKeyError`), so a payload built
 * from untrusted JSON fails at the send instead of producing a message no receiver accepts.
 */
export function createJsonSerializer(): Serializer {
  return {
    contentType: 'application/json',
    serialize(payload, messageType = 'payload') {
      const text = JSON.stringify(payload);
      // Checking the text is cheaper than walking every payload (or a replacer, which slows
      // JSON.stringify down twofold); only a text that names such a key is parsed and walked.
      if (text !== undefined && (text.includes('"__proto__"') || text.includes('"constructor"'))) {
        const path = findForbiddenKey(JSON.parse(text));
        if (path !== undefined) throw new ForbiddenKeyError(messageType, path);
      }
      // JSON.stringify(undefined) is undefined: send `null` rather than an empty body.
      return Buffer.from(text === undefined ? 'null' : text, 'utf8');
    },
    deserialize(body, messageType) {
      let text: string;
      try {
        text = decoder.decode(body);
      } catch (cause) {
        throw new DeserializationError(`The body of '${messageType}' is not valid UTF-8.`, cause);
      }
      try {
        return secureJsonParse.parse(text, undefined, {
          protoAction: 'error',
          constructorAction: 'error',
        });
      } catch (cause) {
        const reason = cause instanceof Error ? cause.message : String(cause);
        throw new DeserializationError(
          `The body of '${messageType}' is not valid JSON or contains a forbidden key (${reason}).`,
          cause,
        );
      }
    },
  };
}
