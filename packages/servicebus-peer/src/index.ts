export type { PeerCredential } from './claims.js';
export type { EntityOptions } from './entities.js';
export {
  type PeerIdentity,
  type PeerKey,
  type ServiceBusPeerOptions,
  serviceBusPeerDefaults,
} from './peer-options.js';
export type { PeerRight } from './sas.js';
export {
  type PeerMessage,
  type PeerStats,
  type ServiceBusPeer,
  startServiceBusPeer,
} from './service-bus-peer.js';
