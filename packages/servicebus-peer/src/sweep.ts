import type { Receiver, Sender } from 'rhea';
import { authorized } from './claims.js';
import { expiredToken } from './link-errors.js';
import { forget } from './links.js';
import { formatDuration } from './management-xml.js';
import type { PeerState } from './peer-state.js';
import { internals } from './rhea-internals.js';

/**
 * What time does to the namespace, checked at most once a second: expired locks, queues idle past
 * `autoDeleteOnIdle`, links whose token expired, and links idle past `linkIdleTimeoutMs`.
 */
export function startSweep(
  state: PeerState,
  deleteQueue: (name: string) => boolean,
): NodeJS.Timeout {
  const { settings, queues, topics, consumerLinks, inboundLinks, lastUse } = state;
  const sweep = setInterval(
    () => {
      const now = Date.now();
      const all = [...queues.values()];
      for (const topic of topics.values()) all.push(...topic.subscriptions.values());
      for (const entity of all) {
        entity.expireLocks(now);
        entity.deadLetter?.expireLocks(now);
      }
      // Service Bus counts a queue idle without sends, receives or settlements, even with a
      // receiver attached that gets nothing; deleting it detaches such receivers with not-found.
      for (const queue of [...queues.values()]) {
        const idle = queue.options.autoDeleteOnIdleMs;
        if (idle !== undefined && now - queue.lastActivity > idle) deleteQueue(queue.path);
      }
      // A link whose claim expired without a renewal is detached, as Service Bus detaches it.
      for (const [connection, links] of consumerLinks) {
        for (const link of [...links.keys()]) {
          const address = String(internals(link).remote.attach?.source?.address ?? '');
          if (authorized(state, connection, address, 'Listen')) continue;
          link.close(expiredToken(address));
          forget(state, connection, link);
        }
      }
      for (const [link, path] of [...inboundLinks]) {
        if (authorized(state, link.connection, path, 'Send')) continue;
        link.close(expiredToken(path));
        inboundLinks.delete(link);
      }
      // Links idle for linkIdleTimeoutMs are detached, as Service Bus does after 10 minutes; the
      // description is the service's.
      for (const [link, at] of [...lastUse]) {
        if (now - at <= settings.linkIdleTimeoutMs) continue;
        lastUse.delete(link);
        if (!link.is_open()) continue;
        const consumer = link.is_sender();
        link.close({
          condition: 'amqp:link:detach-forced',
          description: `The link '${link.name}' is force detached. Code: ${consumer ? 'consumer' : 'publisher'}. Details: ${consumer ? 'AmqpMessageConsumer' : 'AmqpMessagePublisher'}.IdleTimerExpired: Idle timeout: ${formatDuration(settings.linkIdleTimeoutMs)}.`,
        });
        if (consumer) forget(state, link.connection, link as Sender);
        else inboundLinks.delete(link as Receiver);
      }
    },
    Math.min(1000, Math.max(50, Math.floor(settings.linkIdleTimeoutMs / 4))),
  );
  sweep.unref();
  return sweep;
}
