export type { EntityOptions } from './entities.js';
export {
  type PeerMessage,
  type PeerStats,
  type ServiceBusPeer,
  type ServiceBusPeerOptions,
  serviceBusPeerDefaults,
  startServiceBusPeer,
} from './service-bus-peer.js';
