import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EntityOptions } from './entities.js';

/**
 * The part of the Service Bus management REST API (ATOM/XML over HTTPS) that
 * `ServiceBusAdministrationClient` of @azure/service-bus 7.9 uses to create, read, list and
 * delete queues, topics and subscriptions. What it sends and parses is in the SDK's
 * src/serviceBusAtomManagementClient.ts (putResource, getResource, listResources,
 * deleteResource), src/util/atomXmlHelper.ts (executeAtomXmlOperation, parseAtomResult,
 * setName, buildError, getErrorCode) and src/serializers/*ResourceSerializer.ts.
 */

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

/** What the management endpoint reads and changes: the same entities AMQP links use. */
export interface ManagementModel {
  /** `127.0.0.1:PORT`, the host the SDK puts in its URLs. */
  readonly host: string;
  /** `unauthorized`: a valid token whose key lacks the Manage claim. */
  verify(token: string | undefined): 'ok' | 'invalid' | 'expired' | 'unauthorized';
  /** A fault to answer the next request with (429 or 503, as a throttled namespace does). */
  takeFault(): 429 | 503 | undefined;
  queues(): ManagedEntity[];
  topics(): ManagedTopic[];
  createQueue(name: string, options: EntityOptions): void;
  deleteQueue(name: string): boolean;
  createTopic(name: string): void;
  deleteTopic(name: string): boolean;
  createSubscription(topic: string, name: string, options: EntityOptions): void;
  deleteSubscription(topic: string, name: string): boolean;
}

const ATOM_NS = 'http://www.w3.org/2005/Atom';
const SB_NS = 'http://schemas.microsoft.com/netservices/2010/10/servicebus/connect';
const XSI_NS = 'http://www.w3.org/2001/XMLSchema-instance';
/** .NET TimeSpan.MaxValue: what Service Bus reports for "never" (auto-delete, message TTL). */
const FOREVER = 'P10675199DT2H48M5.4775807S';
/** Service Bus's default duplicate detection window when none is given. */
const DEFAULT_DUPLICATE_WINDOW_MS = 10 * 60_000;
/** Service Bus pages list results at 100 entries (the SDK follows the `next` link's $skip). */
const PAGE_SIZE = 100;

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

function escapeXml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function unescapeXml(value: string): string {
  return value
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

/** An ISO 8601 duration as .NET's XmlConvert writes a TimeSpan (`PT1M`, `PT5M30S`, `P1D`). */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return FOREVER;
  let seconds = ms / 1000;
  const days = Math.floor(seconds / 86_400);
  seconds -= days * 86_400;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const time = `${hours ? `${hours}H` : ''}${minutes ? `${minutes}M` : ''}${seconds ? `${seconds}S` : ''}`;
  return `P${days ? `${days}D` : ''}${time ? `T${time}` : days ? '' : 'T0S'}`;
}

/** Parses what the SDK sends (`PT300S`, `P1DT2H`, TimeSpan.MaxValue); undefined means never. */
export function parseDuration(value: string | undefined): number | undefined {
  if (value === undefined || value === FOREVER) return undefined;
  const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$/.exec(value.trim());
  if (match === null) throw new BadRequest(`'${value}' is not an ISO 8601 duration.`);
  const [, d = '0', h = '0', m = '0', s = '0'] = match;
  return ((Number(d) * 24 + Number(h)) * 60 + Number(m)) * 60_000 + Number(s) * 1000;
}

class BadRequest extends Error {}

/** The description element of a PUT body and its simple child elements. */
function parseDescription(body: string): { kind: string; fields: Map<string, string> } {
  // The SDK's serializeToAtomXmlRequest writes <entry><content><XDescription>...</XDescription>.
  // With no settings the description is an empty element: <QueueDescription xmlns="..."/>.
  const root = /<content\b[^>]*>\s*<(\w+)\b[^>]*?(?:\/>|>([\s\S]*)<\/\1>)\s*<\/content>/.exec(body);
  if (root === null) throw new BadRequest('The request body is not an ATOM entry with content.');
  const fields = new Map<string, string>();
  for (const [, name, value] of (root[2] ?? '').matchAll(/<(\w+)>([^<]*)<\/\1>/g)) {
    if (!fields.has(name as string)) fields.set(name as string, unescapeXml(value as string));
  }
  return { kind: root[1] as string, fields };
}

/** The entity path of a forwardTo value; the SDK sends it absolute (`sb://host/queue`). */
function forwardPath(value: string): string {
  const scheme = value.indexOf('://');
  if (scheme < 0) return value;
  const slash = value.indexOf('/', scheme + 3);
  return slash < 0 ? '' : value.slice(slash + 1);
}

/**
 * Service Bus's ranges for entity settings (learn.microsoft.com, "Service Bus quotas" and the
 * QueueDescription reference): it answers 400 to a create outside them.
 */
const RANGES = {
  autoDeleteOnIdleMs: [5 * 60_000, Number.MAX_SAFE_INTEGER],
  duplicateDetectionWindowMs: [20_000, 7 * 24 * 60 * 60_000],
  lockDurationMs: [5_000, 5 * 60_000],
} as const;

function checkRange(name: keyof typeof RANGES, field: string, ms: number | undefined): void {
  const [min, max] = RANGES[name];
  if (ms !== undefined && (ms < min || ms > max)) {
    throw new BadRequest(
      `The value supplied for ${field} is out of range: it must be between ${formatDuration(min)} and ${max === Number.MAX_SAFE_INTEGER ? 'TimeSpan.MaxValue' : formatDuration(max)}. SubCode=40000.`,
    );
  }
}

/** EntityOptions from a QueueDescription or SubscriptionDescription (names as in the SDK's build*Options). */
function entityOptions(fields: Map<string, string>): EntityOptions {
  if (fields.get('RequiresSession') === 'true') {
    throw new BadRequest('Sessions are not modelled by the test peer.');
  }
  const maxDeliveryCount = fields.get('MaxDeliveryCount');
  const lockDuration = parseDuration(fields.get('LockDuration'));
  const autoDelete = parseDuration(fields.get('AutoDeleteOnIdle'));
  const forwardTo = fields.get('ForwardTo');
  const duplicateDetection = fields.get('RequiresDuplicateDetection') === 'true';
  checkRange('autoDeleteOnIdleMs', 'AutoDeleteOnIdle', autoDelete);
  checkRange('lockDurationMs', 'LockDuration', lockDuration);
  if (duplicateDetection) {
    checkRange(
      'duplicateDetectionWindowMs',
      'DuplicateDetectionHistoryTimeWindow',
      parseDuration(fields.get('DuplicateDetectionHistoryTimeWindow')),
    );
  }
  return {
    ...(autoDelete !== undefined ? { autoDeleteOnIdleMs: autoDelete } : {}),
    ...(maxDeliveryCount !== undefined ? { maxDeliveryCount: Number(maxDeliveryCount) } : {}),
    ...(lockDuration !== undefined ? { lockDurationMs: lockDuration } : {}),
    ...(duplicateDetection
      ? {
          duplicateDetectionWindowMs:
            parseDuration(fields.get('DuplicateDetectionHistoryTimeWindow')) ??
            DEFAULT_DUPLICATE_WINDOW_MS,
        }
      : {}),
    ...(forwardTo ? { forwardTo: forwardPath(forwardTo) } : {}),
  };
}

function elements(fields: ReadonlyArray<readonly [string, string | number | boolean | undefined]>) {
  return fields
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `<${name}>${escapeXml(String(value))}</${name}>`)
    .join('');
}

/**
 * Starts a request handler for the management API. Every request needs an `Authorization`
 * header with a SharedAccessSignature, as the SDK's signingPolicy / SasServiceClientCredentials
 * sends it; entity names are case-insensitive, as in Service Bus.
 */
export function createManagementHandler(model: ManagementModel) {
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

  const findQueue = (name: string) => model.queues().find((q) => same(q.name, name));
  const findTopic = (name: string) => model.topics().find((t) => same(t.name, name));

  type Reply = { status: number; body?: string; type?: 'entry' | 'feed' | 'error' };
  const error = (status: number, detail: string): Reply => ({
    status,
    // Parsed by the SDK's buildError as Error.Detail; the status picks the code (getErrorCode).
    body: `<Error><Code>${status}</Code><Detail>${escapeXml(detail)}</Detail></Error>`,
    type: 'error',
  });
  const notFound = (path: string) =>
    error(404, `The messaging entity '${path}' could not be found. SubCode=40400.`);
  const conflict = (path: string) =>
    error(409, `The messaging entity '${path}' already exists. SubCode=40900.`);
  // A GET of an entity that does not exist answers 200 with an empty feed, not 404; the SDK's
  // getResource turns an empty result into MessageEntityNotFoundError for that reason.
  const emptyFeed = (path: string): Reply => ({
    status: 200,
    body: feed('Publicly Listed Services', path, [], new URLSearchParams()),
    type: 'feed',
  });

  const entity = (method: string, path: string, body: string, request: IncomingMessage): Reply => {
    const queue = findQueue(path);
    const topic = queue === undefined ? findTopic(path) : undefined;
    if (method === 'GET') {
      if (queue !== undefined)
        return { status: 200, body: entry(queue.name, queueDescription(queue)), type: 'entry' };
      if (topic !== undefined)
        return { status: 200, body: entry(topic.name, topicDescription(topic)), type: 'entry' };
      return emptyFeed(path);
    }
    if (method === 'DELETE') {
      if (queue !== undefined) model.deleteQueue(queue.name);
      else if (topic !== undefined) model.deleteTopic(topic.name);
      else return notFound(path);
      created.delete(path.toLowerCase());
      return { status: 200 };
    }
    if (method === 'PUT') {
      // Queues and topics share one namespace of names.
      if (queue !== undefined || topic !== undefined) return conflict(path);
      const { kind, fields } = parseDescription(body);
      if (kind === 'QueueDescription') {
        const options = entityOptions(fields);
        checkForwardAuthorization(options, request);
        model.createQueue(path, options);
        const made = findQueue(path) as ManagedEntity;
        return { status: 201, body: entry(made.name, queueDescription(made)), type: 'entry' };
      }
      if (kind === 'TopicDescription') {
        model.createTopic(path);
        const made = findTopic(path) as ManagedTopic;
        return { status: 201, body: entry(made.name, topicDescription(made)), type: 'entry' };
      }
      throw new BadRequest(`${kind} cannot be created at '${path}'.`);
    }
    return error(405, `${method} is not supported.`);
  };

  const subscription = (
    method: string,
    topicName: string,
    name: string,
    body: string,
    request: IncomingMessage,
  ): Reply => {
    const path = `${topicName}/Subscriptions/${name}`;
    const topic = findTopic(topicName);
    const existing = topic?.subscriptions.find((s) => same(s.name, name));
    if (method === 'GET') {
      if (topic === undefined || existing === undefined) return emptyFeed(path);
      return {
        status: 200,
        body: entry(
          `${topic.name}/Subscriptions/${existing.name}`,
          subscriptionDescription(topic.name, existing),
        ),
        type: 'entry',
      };
    }
    if (method === 'DELETE') {
      if (topic === undefined || existing === undefined) return notFound(path);
      model.deleteSubscription(topic.name, existing.name);
      created.delete(path.toLowerCase());
      return { status: 200 };
    }
    if (method === 'PUT') {
      if (topic === undefined) return notFound(topicName);
      if (existing !== undefined) return conflict(path);
      const { kind, fields } = parseDescription(body);
      if (kind !== 'SubscriptionDescription')
        throw new BadRequest(`${kind} is not a subscription.`);
      const options = entityOptions(fields);
      checkForwardAuthorization(options, request);
      model.createSubscription(topic.name, name, options);
      const made = findTopic(topicName)?.subscriptions.find((s) =>
        same(s.name, name),
      ) as ManagedEntity;
      return {
        status: 201,
        body: entry(
          `${topic.name}/Subscriptions/${made.name}`,
          subscriptionDescription(topic.name, made),
        ),
        type: 'entry',
      };
    }
    return error(405, `${method} is not supported.`);
  };

  /**
   * Forwarding needs the right to send to the target: the SDK's putResource sends a token for
   * it in ServiceBusSupplementaryAuthorization whenever ForwardTo is set.
   */
  const checkForwardAuthorization = (options: EntityOptions, request: IncomingMessage) => {
    if (options.forwardTo === undefined) return;
    // Service Bus refuses to forward to an entity that does not exist (400, not 404).
    if (findQueue(options.forwardTo) === undefined && findTopic(options.forwardTo) === undefined) {
      throw new BadRequest(
        `The auto-forwarding destination entity '${options.forwardTo}' does not exist. SubCode=40000.`,
      );
    }
    const token = request.headers.servicebussupplementaryauthorization;
    if (model.verify(Array.isArray(token) ? token[0] : token) !== 'ok') {
      throw new Unauthorized('ServiceBusSupplementaryAuthorization is missing or invalid.');
    }
  };

  const route = (request: IncomingMessage, body: string): Reply => {
    const fault = model.takeFault();
    if (fault === 429) {
      return error(
        429,
        'The request was terminated because the namespace is being throttled. SubCode=50009.',
      );
    }
    if (fault === 503) {
      return error(503, 'The server is busy. Please try again later. SubCode=50002.');
    }
    const auth = model.verify(request.headers.authorization);
    if (auth !== 'ok') {
      return error(
        401,
        auth === 'expired'
          ? 'ExpiredToken: The token is expired.'
          : auth === 'unauthorized'
            ? "Unauthorized: 'Manage,EntityRead' claim(s) are required to perform this operation."
            : 'InvalidSignature: The token has an invalid signature.',
      );
    }
    const method = request.method ?? 'GET';
    const parsed = new URL(request.url ?? '/', `https://${model.host}`);
    const path = decodeURIComponent(parsed.pathname).replace(/^\/+/, '');
    const lower = path.toLowerCase();
    // List paths as the SDK's getQueues / getTopics / getSubscriptions build them.
    if (method === 'GET' && lower === '$resources/queues') {
      const entries = model.queues().map((q) => entry(q.name, queueDescription(q)));
      return {
        status: 200,
        body: feed('Queues', path, entries, parsed.searchParams),
        type: 'feed',
      };
    }
    if (method === 'GET' && lower === '$resources/topics') {
      const entries = model.topics().map((t) => entry(t.name, topicDescription(t)));
      return {
        status: 200,
        body: feed('Topics', path, entries, parsed.searchParams),
        type: 'feed',
      };
    }
    if (/\/subscriptions\/[^/]+\/rules(\/|$)/i.test(path) || lower.startsWith('$')) {
      return error(400, `'${path}' is not supported by the test peer (rules, namespace info).`);
    }
    const at = lower.lastIndexOf('/subscriptions/');
    if (at > 0) {
      const topicName = path.slice(0, at);
      const name = path.slice(at + '/subscriptions/'.length);
      if (name === '' && method === 'GET') {
        const topic = findTopic(topicName);
        const entries = (topic?.subscriptions ?? []).map((s) =>
          entry(
            `${topic?.name}/Subscriptions/${s.name}`,
            subscriptionDescription(topic?.name as string, s),
          ),
        );
        return {
          status: 200,
          body: feed('Subscriptions', path, entries, parsed.searchParams),
          type: 'feed',
        };
      }
      return subscription(method, topicName, name, body, request);
    }
    if (method === 'PUT' && request.headers['if-match'] !== undefined) {
      return error(400, 'Updating an entity is not supported by the test peer.');
    }
    return entity(method, path, body, request);
  };

  return (request: IncomingMessage, response: ServerResponse): void => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      let reply: Reply;
      try {
        reply = route(request, Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        if (e instanceof Unauthorized) reply = error(401, e.message);
        else if (e instanceof BadRequest) reply = error(400, e.message);
        else reply = error(500, String(e));
      }
      const types = {
        entry: 'application/atom+xml;type=entry;charset=utf-8',
        feed: 'application/atom+xml;type=feed;charset=utf-8',
        error: 'application/xml;charset=utf-8',
      };
      const body =
        reply.body === undefined ? '' : `<?xml version="1.0" encoding="utf-8"?>${reply.body}`;
      response.writeHead(reply.status, {
        ...(reply.type !== undefined ? { 'content-type': types[reply.type] } : {}),
        'content-length': Buffer.byteLength(body),
      });
      response.end(body);
    });
  };
}

class Unauthorized extends Error {}
