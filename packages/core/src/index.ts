export type { Reply, ReplyExpectation } from './callbacks/reply.js';
export { checkWholeNumber } from './configuration/option-checks.js';
export type {
  Continuation,
  ContinuationOptions,
  ContinuationReply,
  DurableRequestOptions,
  DurableSendOptions,
} from './durable-requests/continuation.js';
export {
  ContinuationDone,
  type ContinuationOutcome,
  DurableRequestTimeout,
} from './durable-requests/durable-messages.js';
export { createEndpoint, createSendOnlyEndpoint } from './endpoint/create-endpoint.js';
export type {
  CallbackOptions,
  Endpoint,
  EndpointState,
  EndpointStats,
  Handler,
  HandlerContext,
  PublishOptions,
  RegisterOptions,
  ReplyOptions,
  RequestOptions,
  SendOptions,
  SendResult,
} from './endpoint/endpoint.js';
export { type EndpointOptions, endpointDefaults } from './endpoint/endpoint-options.js';
export { checkUserHeaders } from './endpoint/outgoing.js';
export {
  ConfigurationError,
  ContinuationFailedError,
  DeserializationError,
  DestinationNotFoundError,
  EndpointStateError,
  EndpointStoppedError,
  ForbiddenKeyError,
  InvalidDestinationError,
  isTidingsError,
  MalformedMessageError,
  MessageTooLargeError,
  NoHandlerError,
  NoRouteError,
  PersistenceError,
  type RemoteFailure,
  RemoteFailureError,
  ReplyMismatchError,
  RequestAbortedError,
  RequestTimeoutError,
  SendOnlyEndpointError,
  SerializationError,
  TidingsError,
  type TidingsErrorCode,
  type TidingsErrorOptions,
  TransportError,
  TransportUnavailableError,
  UsageError,
  ValidationError,
  type ValidationIssue,
} from './errors.js';
export type {
  EndpointInstrumentation,
  FailureNext,
  Instrumentation,
  InstrumentedEndpoint,
  MessageObserver,
  RequestObserver,
} from './instrumentation/instrumentation.js';
export {
  createConsoleLogger,
  type LogFields,
  type Logger,
  type LogLevel,
  silentLogger,
} from './logging/logger.js';
export { type LongTimer, type LongTimerOptions, setLongTimeout } from './long-timer.js';
export {
  defineMessage,
  type MessageDefinition,
  type PayloadOf,
} from './messages/define-message.js';
export { Headers, type MessageIntent } from './messages/headers.js';
export { validatePayload } from './messages/validate.js';
export {
  createInMemoryPersistence,
  type InMemoryPersistence,
  type InMemorySession,
} from './persistence/in-memory-persistence.js';
export { inboxKey } from './persistence/inbox-key.js';
export { decodeOperations, encodeOperations } from './persistence/operation-codec.js';
export { type OutboxOptions, outboxDefaults } from './persistence/outbox-options.js';
export {
  type ClaimResult,
  type DurableRequestRecord,
  type DurableRequestStore,
  type EndpointStorage,
  type OutboxRecord,
  PERSISTENCE_SPI_VERSION,
  type Persistence,
  type PersistenceContext,
  type StorageTransaction,
} from './persistence/persistence.js';
export { attachStorageSession, storageSession } from './persistence/storage-session.js';
export type { TransactionScope } from './persistence/transaction-scope.js';
export type {
  IncomingContext,
  IncomingMiddleware,
  Middleware,
  OutgoingContext,
  OutgoingMiddleware,
} from './pipeline/middleware.js';
export { Fault, type FaultReplyDetail } from './recoverability/fault-reply.js';
export {
  type FailureInfo,
  type RecoverabilityAction,
  type RecoverabilityOptions,
  type RecoverabilityPolicy,
  recoverabilityDefaults,
} from './recoverability/recoverability.js';
export {
  type FailedMessage,
  type ReturnToSourceQueueOptions,
  type ReturnToSourceQueueResult,
  returnToSourceQueue,
} from './recoverability/return-to-source-queue.js';
export { createJsonSerializer } from './serialization/json-serializer.js';
export type { Serializer } from './serialization/serializer.js';
export {
  createInMemoryTransport,
  type InMemoryTransport,
  type InMemoryTransportOptions,
  inMemoryTransportDefaults,
} from './transport/in-memory-transport.js';
// Transport authors: `@tidings/core/transport`. Applications name a transport and read its
// capabilities, nothing more.
export type { Transport, TransportCapabilities } from './transport/transport.js';
