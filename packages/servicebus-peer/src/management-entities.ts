import type { IncomingMessage } from 'node:http';
import type { EntityOptions } from './entities.js';
import type { ManagementModel } from './management.js';
import type { AtomWriter, ManagedEntity, ManagedTopic } from './management-atom.js';
import { entityOptions } from './management-settings.js';
import { BadRequest, escapeXml, parseDescription, Unauthorized } from './management-xml.js';

/** What the management API answers: a status, and an ATOM entry, a feed or an error. */
export type Reply = { status: number; body?: string; type?: 'entry' | 'feed' | 'error' };

const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/**
 * GET, PUT and DELETE of one entity: a queue or a topic at `/<name>`, a subscription at
 * `/<topic>/Subscriptions/<name>`. Names are case-insensitive, as in Service Bus.
 */
export function createEntityRoutes(model: ManagementModel, atom: AtomWriter) {
  const { created, entry, feed, queueDescription, topicDescription, subscriptionDescription } =
    atom;
  const findQueue = (name: string) => model.queues().find((q) => same(q.name, name));
  const findTopic = (name: string) => model.topics().find((t) => same(t.name, name));

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

  return { entity, subscription, error, findTopic };
}
