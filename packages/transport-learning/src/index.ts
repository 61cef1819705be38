export { mapLearningError } from './errors.js';
export { createLearningTransport, type LearningTransport } from './learning-transport.js';
export { type LearningTransportOptions, learningTransportDefaults } from './options.js';
export { MAX_DELAY_MS } from './sender.js';
