/**
 * One message file: headers and body in one JSON document, so one rename publishes both. A body
 * that is valid UTF-8 (JSON, text) is stored as text, readable in an editor; any other body as
 * base64.
 */
export interface Envelope {
  readonly messageId: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

interface EnvelopeFile {
  readonly tidings: 1;
  readonly messageId: string;
  readonly headers: Record<string, string>;
  readonly bodyEncoding: 'utf8' | 'base64';
  readonly body: string;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function encodeEnvelope(envelope: Envelope): Buffer {
  let body: string;
  let bodyEncoding: EnvelopeFile['bodyEncoding'];
  try {
    body = strictUtf8.decode(envelope.body);
    bodyEncoding = 'utf8';
  } catch {
    body = Buffer.from(
      envelope.body.buffer,
      envelope.body.byteOffset,
      envelope.body.byteLength,
    ).toString('base64');
    bodyEncoding = 'base64';
  }
  const file: EnvelopeFile = {
    tidings: 1,
    messageId: envelope.messageId,
    headers: { ...envelope.headers },
    bodyEncoding,
    body,
  };
  return Buffer.from(JSON.stringify(file, null, 2));
}

/**
 * Reads a message file. A file that is not an envelope (hand-written, truncated by a full disk)
 * becomes a message with no headers and the raw bytes as body: core then moves it to the error
 * queue as malformed instead of it blocking the queue.
 */
export function decodeEnvelope(bytes: Buffer, fallbackId: string): Envelope {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { messageId: fallbackId, headers: {}, body: bytes };
  }
  const file = parsed as Partial<Record<keyof EnvelopeFile, unknown>> | null;
  if (typeof file?.headers !== 'object' || file.headers === null) {
    return { messageId: fallbackId, headers: {}, body: bytes };
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(file.headers)) {
    // defineProperty: a header named __proto__ stays a plain key.
    if (typeof value === 'string') {
      Object.defineProperty(headers, name, { value, enumerable: true, writable: true });
    }
  }
  let body: Uint8Array;
  if (typeof file.body !== 'string') body = new Uint8Array(0);
  else if (file.bodyEncoding === 'base64') body = Buffer.from(file.body, 'base64');
  else body = Buffer.from(file.body, 'utf8');
  const messageId =
    typeof file.messageId === 'string' && file.messageId.length > 0 ? file.messageId : fallbackId;
  return { messageId, headers, body };
}
