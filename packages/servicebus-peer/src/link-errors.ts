import { normalise } from './addresses.js';
import type { PeerRight } from './sas.js';

/** The AMQP errors the peer refuses an attach or a transfer with, or detaches a link with. */

export const notFound = (address: string) => ({
  // Service Bus refuses the attach with amqp:not-found; the SDK maps it to
  // MessagingEntityNotFound (sdk/servicebus/service-bus/src/serviceBusError.ts).
  condition: 'amqp:not-found',
  description: `The messaging entity '${normalise(address)}' could not be found.`,
});

export const entityDisabled = (address: string) => ({
  condition: 'com.microsoft:entity-disabled',
  description: `Messaging entity '${normalise(address)}' is currently disabled.`,
});

export const expiredToken = (address: string) => ({
  condition: 'amqp:unauthorized-access',
  description: `The token for '${normalise(address)}' has expired and was not renewed.`,
});

export const unauthorized = (address: string, right: PeerRight) => ({
  // What Service Bus answers an attach without the claim; the SDK maps it to UnauthorizedAccess.
  condition: 'amqp:unauthorized-access',
  description: `Unauthorized access. '${right}' claim(s) are required to perform this operation. Resource: '${normalise(address)}'.`,
});
