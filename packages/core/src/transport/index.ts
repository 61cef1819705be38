/**
 * `@tidings/core/transport`: what a transport author builds on, apart from what applications use
 * (the root entry). The SPI, and the helpers every transport needs the same way.
 */
export { checkTimerMs, checkWholeNumber } from '../configuration/option-checks.js';
export { fitsWithin } from '../endpoint/outgoing.js';
export {
  DestinationNotFoundError,
  isTidingsError,
  MalformedMessageError,
  MessageTooLargeError,
  TidingsError,
  TransportError,
  TransportUnavailableError,
} from '../errors.js';
export { MAX_TIMER_MS, setLongTimeout } from '../long-timer.js';
export { isValidDestination } from '../messages/destination-name.js';
export { Headers, headerCount } from '../messages/headers.js';
export { redactSecrets, redactUrl } from '../security/redact.js';
export {
  mapNativeError,
  type NativeErrorContext,
  type NativeErrorFacts,
  type NativeErrorTable,
  redactError,
} from './native-errors.js';
export { copyEntries, PACKED_HEADERS, packHeaders, unpackHeaders } from './packed-headers.js';
export { QueueSlots } from './queue-slots.js';
export {
  type DeadLetterOutcome,
  type EndpointTopology,
  type IncomingTransportMessage,
  type MessageOutcome,
  type OnMessage,
  type OutgoingTransportMessage,
  type ReceiveSettings,
  TRANSPORT_SPI_VERSION,
  type Transport,
  type TransportCapabilities,
  type TransportContext,
  type TransportDestination,
  type TransportEndpoint,
  type TransportOperation,
} from './transport.js';
