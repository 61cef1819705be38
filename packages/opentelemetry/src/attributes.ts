/**
 * Attribute names. `messaging.*` and `error.type` are OpenTelemetry's messaging semantic
 * conventions; `tidings.*` say what the conventions have no name for.
 */
export const Attr = {
  MessagingSystem: 'messaging.system',
  OperationType: 'messaging.operation.type',
  OperationName: 'messaging.operation.name',
  DestinationName: 'messaging.destination.name',
  MessageId: 'messaging.message.id',
  ConversationId: 'messaging.message.conversation_id',
  ErrorType: 'error.type',
  MessageType: 'tidings.message.type',
  Intent: 'tidings.intent',
  Endpoint: 'tidings.endpoint',
  /** 1 for the first attempt at handling a delivery, 2 for the first immediate retry, ... */
  Attempt: 'tidings.attempt',
  /** How many delayed retries the message had been through when it was received. */
  DelayedRetries: 'tidings.delayed_retries',
  /** What followed a failed attempt: `immediate-retry`, `delayed-retry`, `error-queue`, ... */
  FailureNext: 'tidings.failure.next',
  /** How the transport settled the message: `complete`, `abandon`, `dead-letter`. */
  Outcome: 'tidings.outcome',
  DelayMs: 'tidings.delay_ms',
} as const;

/** `messaging.system` for a transport's name: the conventions' values where they have one. */
export function messagingSystem(transportName: string): string {
  switch (transportName) {
    case 'azure-service-bus':
      return 'servicebus';
    case 'in-memory':
    case 'learning':
      return `tidings.${transportName}`;
    default:
      return transportName;
  }
}

/** `error.type`: a Tidings error's stable code, else the error's class name. */
export function errorType(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('TIDINGS_')) return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string' && name.length > 0) return name;
  }
  return '_OTHER';
}
