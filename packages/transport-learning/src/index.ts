export { createLearningTransport, type LearningTransport } from './learning-transport.js';
export { type LearningTransportOptions, learningTransportDefaults } from './options.js';
