/** Turns payloads into bytes and back. The default is JSON (`createJsonSerializer`). */
export interface Serializer {
  /** Written to the `tidings.content-type` header. */
  readonly contentType: string;
  /**
   * Throws a `TidingsError` (e.g. `ForbiddenKeyError`) for a payload receivers would refuse; any
   * other error becomes a `SerializationError`. `messageType` is for error messages.
   */
  serialize(payload: unknown, messageType?: string): Uint8Array;
  /** Throws `DeserializationError` for bytes that are not a valid payload. */
  deserialize(body: Uint8Array, messageType: string): unknown;
}
