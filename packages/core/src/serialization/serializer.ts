/** Turns payloads into bytes and back. The default is JSON (`createJsonSerializer`). */
export interface Serializer {
  /** Written to the `tidings.content-type` header. */
  readonly contentType: string;
  serialize(payload: unknown): Uint8Array;
  /** Throws `DeserializationError` for bytes that are not a valid payload. */
  deserialize(body: Uint8Array, messageType: string): unknown;
}
