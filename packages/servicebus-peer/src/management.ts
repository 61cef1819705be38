import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EntityOptions } from './entities.js';
import { createAtomWriter, type ManagedEntity, type ManagedTopic } from './management-atom.js';
import { createEntityRoutes, type Reply } from './management-entities.js';
import { BadRequest, Unauthorized } from './management-xml.js';

/**
 * The part of the Service Bus management REST API (ATOM/XML over HTTPS) that
 * `ServiceBusAdministrationClient` of @azure/service-bus 7.9 uses to create, read, list and
 * delete queues, topics and subscriptions. What it sends and parses is in the SDK's
 * src/serviceBusAtomManagementClient.ts (putResource, getResource, listResources,
 * deleteResource), src/util/atomXmlHelper.ts (executeAtomXmlOperation, parseAtomResult,
 * setName, buildError, getErrorCode) and src/serializers/*ResourceSerializer.ts.
 */

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

/**
 * Starts a request handler for the management API. Every request needs an `Authorization`
 * header with a SharedAccessSignature, as the SDK's signingPolicy / SasServiceClientCredentials
 * sends it; entity names are case-insensitive, as in Service Bus.
 */
export function createManagementHandler(model: ManagementModel) {
  const atom = createAtomWriter(model);
  const { entry, feed, queueDescription, topicDescription, subscriptionDescription } = atom;
  const { entity, subscription, error, findTopic } = createEntityRoutes(model, atom);

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
