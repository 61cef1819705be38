export {
  type DescribePersistenceOptions,
  describePersistence,
  type PersistenceUnderTest,
} from './describe-persistence.js';
