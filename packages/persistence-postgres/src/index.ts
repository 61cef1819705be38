export { toPersistenceError } from './errors.js';
export {
  type PostgresPersistenceOptions,
  postgresPersistenceDefaults,
} from './options.js';
export {
  createPostgresPersistence,
  type PostgresPersistence,
  postgresSession,
} from './postgres-persistence.js';
export { postgresSchemaSql } from './schema.js';
