export { type MapErrorContext, mapKafkaError } from './errors.js';
export { createKafkaTransport, type KafkaTransport } from './kafka-transport.js';
export {
  type KafkaBrokerAddress,
  type KafkaSaslOptions,
  type KafkaTransportOptions,
  kafkaTransportDefaults,
} from './options.js';
