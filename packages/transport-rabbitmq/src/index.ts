export {
  DELAY_LEVELS,
  MAX_DELAY_SECONDS,
} from './delay-levels.js';
export { mapRabbitMqError } from './errors.js';
export {
  type RabbitMqQueueType,
  type RabbitMqTlsOptions,
  type RabbitMqTransportOptions,
  rabbitMqTransportDefaults,
} from './options.js';
export { createRabbitMqTransport } from './rabbitmq-transport.js';
