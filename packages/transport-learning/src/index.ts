export {
  createLearningTransport,
  type LearningTransport,
  MAX_DELAY_MS,
} from './learning-transport.js';
export { type LearningTransportOptions, learningTransportDefaults } from './options.js';
