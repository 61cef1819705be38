export type { EntityOptions } from './entities.js';
export type { PeerRight } from './sas.js';
export {
  type PeerCredential,
  type PeerIdentity,
  type PeerKey,
  type PeerMessage,
  type PeerStats,
  type ServiceBusPeer,
  type ServiceBusPeerOptions,
  serviceBusPeerDefaults,
  startServiceBusPeer,
} from './service-bus-peer.js';
