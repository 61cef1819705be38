/**
 * Header names: the wire contract (docs/wire-format.md). Values are strings. A service in another
 * language that sets these headers can send a message a Tidings endpoint handles.
 */
export const Headers = {
  MessageId: 'tidings.message-id',
  CorrelationId: 'tidings.correlation-id',
  ConversationId: 'tidings.conversation-id',
  /** The logical message type, e.g. `sales.PlaceOrder`. Absent on return-code replies. */
  MessageType: 'tidings.message-type',
  ContentType: 'tidings.content-type',
  /** ISO 8601 UTC time the message was sent. */
  TimeSent: 'tidings.time-sent',
  /** `send`, `publish`, `reply`, or `fault` (the message a request carried failed for good). */
  Intent: 'tidings.intent',
  /** The queue replies to this message go to. */
  ReplyTo: 'tidings.reply-to',
  /**
   * `express`: only an in-memory callback waits for the reply (a request), so the reply may
   * travel without durability (ADR 13). Absent: the reply is durable.
   */
  ReplyDurability: 'tidings.reply-durability',
  /** A return-code reply: the integer code; the body is empty. */
  ReturnCode: 'tidings.return-code',
  OriginatingEndpoint: 'tidings.originating-endpoint',
  OriginatingInstance: 'tidings.originating-instance',
  /** How many delayed retries this message has been through. */
  DelayedRetries: 'tidings.delayed-retries',
  /** How many times `returnToSourceQueue` has sent this message back to the queue it failed in. */
  Returns: 'tidings.returns',
  ExceptionType: 'tidings.exception.type',
  ExceptionCode: 'tidings.exception.code',
  ExceptionMessage: 'tidings.exception.message',
  ExceptionStack: 'tidings.exception.stack',
  FailedQueue: 'tidings.failed-queue',
  TimeOfFailure: 'tidings.time-of-failure',
} as const;

export type MessageIntent = 'send' | 'publish' | 'reply' | 'fault';

/**
 * The value of a count header (`tidings.delayed-retries`, `tidings.returns`). It comes from the
 * wire: anything but a whole number of zero or more counts as none.
 */
export function headerCount(headers: Readonly<Record<string, string>>, name: string): number {
  const count = Number(headers[name] ?? 0);
  return Number.isSafeInteger(count) && count >= 0 ? count : 0;
}

/** Header values longer than this are cut when recording failures, so a stack cannot make the message too large. */
export const MAX_FAILURE_HEADER_LENGTH = 4096;
