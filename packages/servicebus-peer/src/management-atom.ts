import type { EntityOptions } from './entities.js';
import type { ManagementModel } from './management.js';
import { DEFAULT_DUPLICATE_WINDOW_MS } from './management-settings.js';
import {
  ATOM_NS,
  elements,
  escapeXml,
  FOREVER,
  formatDuration,
  SB_NS,
  XSI_NS,
} from './management-xml.js';

export interface ManagedEntity {
  /** As created (Service Bus keeps the case it was given; lookups ignore case). */
  readonly name: string;
  readonly options: EntityOptions;
  readonly messageCount: number;
}

export interface ManagedTopic {
  readonly name: string;
  readonly subscriptions: readonly ManagedEntity[];
}

/** Service Bus pages list results at 100 entries (the SDK follows the `next` link's $skip). */
const PAGE_SIZE = 100;

/**
 * Writes what the management API answers: ATOM entries for queues, topics and subscriptions,
 * and feeds of them, paged as Service Bus pages them. It remembers when each entity was created.
 */
export function createAtomWriter(model: Pick<ManagementModel, 'host'>) {
  const created = new Map<string, string>();
  const createdAt = (path: string) => {
    const key = path.toLowerCase();
    let at = created.get(key);
    if (at === undefined) {
      at = new Date().toISOString();
      created.set(key, at);
    }
    return at;
  };
  const url = (path: string, query = '') =>
    `https://${model.host}/${encodeURI(path)}?api-version=2021-05${query}`;
  const times = (path: string): Array<[string, string]> => {
    const at = createdAt(path);
    return [
      ['CreatedAt', at],
      ['UpdatedAt', at],
      ['AccessedAt', new Date().toISOString()],
    ];
  };

  // Field order follows Service Bus's own (the SDK's serializers cite the .NET
  // *PropertiesExtensions.cs); every field the SDK's buildQueue / buildTopic /
  // buildSubscription requires is present, or it throws while parsing.
  const queueDescription = (queue: ManagedEntity) => {
    const o = queue.options;
    return `<QueueDescription xmlns="${SB_NS}" xmlns:i="${XSI_NS}">${elements([
      ['LockDuration', formatDuration(o.lockDurationMs ?? 60_000)],
      ['MaxSizeInMegabytes', 1024],
      ['RequiresDuplicateDetection', o.duplicateDetectionWindowMs !== undefined],
      ['RequiresSession', false],
      ['DefaultMessageTimeToLive', FOREVER],
      ['DeadLetteringOnMessageExpiration', false],
      [
        'DuplicateDetectionHistoryTimeWindow',
        formatDuration(o.duplicateDetectionWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS),
      ],
      ['MaxDeliveryCount', o.maxDeliveryCount ?? 10],
      ['EnableBatchedOperations', true],
      ['SizeInBytes', 0],
      ['MessageCount', queue.messageCount],
      ['Status', 'Active'],
      ['ForwardTo', o.forwardTo === undefined ? undefined : `sb://${model.host}/${o.forwardTo}`],
      ...times(queue.name),
      ['AutoDeleteOnIdle', formatDuration(o.autoDeleteOnIdleMs)],
      ['EnablePartitioning', false],
      ['EntityAvailabilityStatus', 'Available'],
      ['EnableExpress', false],
    ])}</QueueDescription>`;
  };
  const topicDescription = (topic: ManagedTopic) =>
    `<TopicDescription xmlns="${SB_NS}" xmlns:i="${XSI_NS}">${elements([
      ['DefaultMessageTimeToLive', FOREVER],
      ['MaxSizeInMegabytes', 1024],
      ['RequiresDuplicateDetection', false],
      ['DuplicateDetectionHistoryTimeWindow', formatDuration(DEFAULT_DUPLICATE_WINDOW_MS)],
      ['EnableBatchedOperations', true],
      ['SizeInBytes', 0],
      ['Status', 'Active'],
      ...times(topic.name),
      ['SupportOrdering', true],
      ['AutoDeleteOnIdle', FOREVER],
      ['EnablePartitioning', false],
      ['EntityAvailabilityStatus', 'Available'],
      ['EnableExpress', false],
      ['SubscriptionCount', topic.subscriptions.length],
    ])}</TopicDescription>`;
  const subscriptionDescription = (topic: string, subscription: ManagedEntity) => {
    const o = subscription.options;
    return `<SubscriptionDescription xmlns="${SB_NS}" xmlns:i="${XSI_NS}">${elements([
      ['LockDuration', formatDuration(o.lockDurationMs ?? 60_000)],
      ['RequiresSession', false],
      ['DefaultMessageTimeToLive', FOREVER],
      ['DeadLetteringOnMessageExpiration', false],
      ['DeadLetteringOnFilterEvaluationExceptions', true],
      ['MessageCount', subscription.messageCount],
      ['MaxDeliveryCount', o.maxDeliveryCount ?? 10],
      ['EnableBatchedOperations', true],
      ['Status', 'Active'],
      ['ForwardTo', o.forwardTo === undefined ? undefined : `sb://${model.host}/${o.forwardTo}`],
      ...times(`${topic}/Subscriptions/${subscription.name}`),
      ['AutoDeleteOnIdle', formatDuration(o.autoDeleteOnIdleMs)],
      ['EntityAvailabilityStatus', 'Available'],
    ])}</SubscriptionDescription>`;
  };

  // The SDK's setName reads entity names back from each entry's <id> URL path.
  const entry = (path: string, description: string) => {
    const at = createdAt(path);
    const title = path.slice(path.lastIndexOf('/') + 1);
    return `<entry xmlns="${ATOM_NS}"><id>${escapeXml(url(path))}</id><title type="text">${escapeXml(title)}</title><published>${at}</published><updated>${at}</updated><author><name>${escapeXml(model.host)}</name></author><link rel="self" href="${escapeXml(url(path))}"/><content type="application/xml">${description}</content></entry>`;
  };
  const feed = (title: string, path: string, entries: string[], query: URLSearchParams): string => {
    const skip = Number(query.get('$skip') ?? 0) || 0;
    const top = Number(query.get('$top') ?? PAGE_SIZE) || PAGE_SIZE;
    const page = entries.slice(skip, skip + top);
    // More to come: a `next` link whose $skip the SDK's getMarkerFromNextLinkUrl reads.
    const next =
      skip + top < entries.length
        ? `<link rel="next" href="${escapeXml(url(path, `&$skip=${skip + top}&$top=${top}`))}"/>`
        : '';
    return `<feed xmlns="${ATOM_NS}"><title type="text">${title}</title><id>${escapeXml(url(path))}</id><updated>${new Date().toISOString()}</updated><link rel="self" href="${escapeXml(url(path))}"/>${next}${page.join('')}</feed>`;
  };

  return {
    created,
    entry,
    feed,
    queueDescription,
    topicDescription,
    subscriptionDescription,
  };
}

export type AtomWriter = ReturnType<typeof createAtomWriter>;
