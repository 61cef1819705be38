import rhea, {
  type Connection,
  type Container,
  type Delivery,
  type EventContext,
  type Message,
  type Receiver,
  type Sender,
} from 'rhea';
import { MANAGEMENT_SUFFIX, normalise } from './addresses.js';
import { handleManagement } from './amqp-management.js';
import { authorized, handleCbs } from './claims.js';
import type { MessageEntity } from './entities.js';
import { entityDisabled, notFound, unauthorized } from './link-errors.js';
import { isDisabled, receivable, sendable } from './namespace.js';
import type { PeerState } from './peer-state.js';
import { internals } from './rhea-internals.js';
import { handleDispositions } from './settlement.js';
import { receiveTransfer } from './transfers.js';

/**
 * Links as clients attach them: the peer's rhea container, which links it accepts or refuses, and
 * where what arrives on each goes ($cbs, an entity's $management, or the entity itself).
 */
export function createContainer(state: PeerState): Container {
  const { settings, consumerLinks, replyLinks, inboundLinks, lastUse } = state;
  // Transfers are accepted or refused by the 'message' handler, after the limits are checked.
  const container = rhea.create_container({ id: 'servicebus-peer', autoaccept: false } as never);

  container.on('receiver_open', (context: EventContext) => {
    // The client sends on this link: to an entity, to $cbs or to an entity's $management.
    const link = context.receiver as Receiver;
    const address = String(internals(link).remote.attach?.target?.address ?? '');
    link.set_target({ address });
    // Echo the client's terminus: a null one would mean the attach was refused (AMQP 1.0, 2.6.3).
    link.set_source((internals(link).remote.attach?.source ?? {}) as { address: string });
    // Senders read the batch limit from the attach's max_message_size
    // (sdk/servicebus/service-bus/src/core/messageSender.ts, getMaxMessageSize).
    (internals(link).local.attach as { max_message_size?: unknown }).max_message_size =
      settings.maxMessageSizeBytes;
    const path = normalise(address);
    if (path === '$cbs') return;
    if (path.endsWith(MANAGEMENT_SUFFIX)) return;
    if (!authorized(state, context.connection, address, 'Send'))
      link.close(unauthorized(address, 'Send'));
    else if (sendable(state, address) === undefined) link.close(notFound(address));
    else if (isDisabled(state, address)) link.close(entityDisabled(address));
    else {
      inboundLinks.set(link, path);
      lastUse.set(link, Date.now());
    }
  });
  container.on('receiver_close', (context: EventContext) => {
    inboundLinks.delete(context.receiver as Receiver);
    lastUse.delete(context.receiver as Receiver);
  });

  container.on('sender_open', (context: EventContext) => {
    // The client receives on this link: from an entity, or replies for $cbs / $management.
    const link = context.sender as Sender;
    const connection = context.connection;
    const source = internals(link).remote.attach?.source;
    const target = internals(link).remote.attach?.target;
    link.set_source((source ?? {}) as { address: string });
    link.set_target((target ?? {}) as { address: string });
    const address = String(source?.address ?? '');
    const path = normalise(address);
    if (path === '$cbs' || path.endsWith(MANAGEMENT_SUFFIX)) {
      let links = replyLinks.get(connection);
      if (links === undefined) {
        links = new Map();
        replyLinks.set(connection, links);
      }
      links.set(link.name, link);
      if (target?.address) links.set(String(target.address), link);
      return;
    }
    if (!authorized(state, connection, address, 'Listen')) {
      link.close(unauthorized(address, 'Listen'));
      return;
    }
    const entity = receivable(state, address);
    if (entity === undefined) {
      link.close(notFound(address));
      return;
    }
    if (isDisabled(state, address)) {
      link.close(entityDisabled(address));
      return;
    }
    lastUse.set(link, Date.now());
    let links = consumerLinks.get(connection);
    if (links === undefined) {
      links = new Map();
      consumerLinks.set(connection, links);
    }
    links.set(link, entity);
    entity.addConsumer({ link });
  });

  const entityOfLink = (context: EventContext): MessageEntity | undefined =>
    consumerLinks.get(context.connection)?.get(context.sender as Sender);

  container.on('sendable', (context: EventContext) => entityOfLink(context)?.pump());

  container.on('sender_draining', (context: EventContext) => {
    // A drain asks for what is there now and then the credit back (receiveMessages' batching
    // receiver drains at the end of its wait: sdk/servicebus/service-bus/src/core/batchingReceiver.ts).
    entityOfLink(context)?.pump();
    // Synchronously, inside rhea's frame handling, so the answering flow goes out with it.
    (context.sender as Sender).set_drained(true);
  });

  container.on('message', (context: EventContext) => {
    const link = context.receiver as Receiver;
    const address = String(internals(link).remote.attach?.target?.address ?? '');
    const path = normalise(address);
    const delivery = context.delivery as Delivery;
    if (path === '$cbs') {
      handleCbs(state, context.connection, context.message as Message);
      delivery.accept();
      return;
    }
    if (path.endsWith(MANAGEMENT_SUFFIX)) {
      handleManagement(
        state,
        context.connection,
        path.slice(0, -MANAGEMENT_SUFFIX.length),
        context.message as Message,
      );
      delivery.accept();
      return;
    }
    receiveTransfer(state, context, address);
  });

  handleDispositions(container, state);

  container.on('sender_close', (context: EventContext) =>
    forget(state, context.connection, context.sender as Sender),
  );
  container.on('disconnected', (context: EventContext) => forget(state, context.connection));
  container.on('connection_close', (context: EventContext) => forget(state, context.connection));
  // Errors on one client's connection must not take the peer down.
  container.on('error', () => {});
  container.on('connection_error', () => {});
  container.on('sender_error', () => {});
  container.on('receiver_error', () => {});
  container.on('session_error', () => {});

  return container;
}

/** Drops what the peer holds for a link that went away, or for all of a connection's. */
export function forget(state: PeerState, connection: Connection, link?: Sender): void {
  const { settings, claims, consumerLinks, replyLinks, inboundLinks, lastUse } = state;
  if (link === undefined) {
    for (const inbound of inboundLinks.keys()) {
      if (inbound.connection === connection) inboundLinks.delete(inbound);
    }
  }
  const links = consumerLinks.get(connection);
  if (links === undefined) return;
  for (const [sender, entity] of [...links]) {
    if (link !== undefined && sender !== link) continue;
    links.delete(sender);
    lastUse.delete(sender);
    entity.removeConsumer(sender, settings.locksOnDetach === 'release');
  }
  if (link === undefined) {
    consumerLinks.delete(connection);
    replyLinks.delete(connection);
    claims.delete(connection);
  }
}
