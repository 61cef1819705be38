export {
  type AzureServiceBusTransport,
  type AzureServiceBusTransportStats,
  createAzureServiceBusTransport,
} from './azure-service-bus-transport.js';
export { mapAzureServiceBusError } from './errors.js';
export {
  createAdministrationInstaller,
  type EntitySettings,
  type TopologyInstaller,
} from './installer.js';
export { serviceBusLimits } from './limits.js';
export { subscriptionName, topicName } from './naming.js';
export { enableTcpNoDelay } from './no-delay.js';
export {
  type AdministrationOptions,
  type AzureServiceBusTransportOptions,
  type AzureServiceBusTransportSettings,
  type AzureTokenCredential,
  azureServiceBusTransportDefaults,
  type ConnectionStringConnection,
  type CredentialConnection,
} from './options.js';
export { MessagePropertiesTooLargeError } from './property-limits.js';
