import type { ServerResponse } from 'node:http';
import {
  type Endpoint,
  type MessageDefinition,
  RequestAbortedError,
  UsageError,
} from '@tidings/core';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { AwaitReply, AwaitReplyOptions } from './await-reply.js';
import { addManager, Drain, removeManager, ServerClosingError } from './drain.js';
import { withHttpStatus } from './http-status.js';
import {
  checkTimeout,
  resolvePluginOptions,
  type TidingsPluginOptions,
  type TidingsRouteOptions,
} from './options.js';
import { requestForHttp } from './request-for-http.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The endpoint given to the Tidings plugin. */
    readonly tidings: Endpoint;
  }
  interface FastifyRequest {
    /**
     * Sends a request over the bus and waits for its reply. Aborted at once if the HTTP client
     * disconnects; errors carry the HTTP `statusCode` Fastify answers with (504 on timeout, ...).
     */
    awaitReply: AwaitReply;
  }
  interface FastifyContextConfig {
    /** Tidings settings for this route, e.g. `{ timeoutMs: 2000 }`. */
    tidings?: TidingsRouteOptions;
  }
}

// The raw response, so a request can notice its client leaving: node's IncomingMessage emits
// 'close' as soon as its body is read, only the response's 'close' means "the client is gone".
const responseOf = Symbol('tidings.response');

interface WithResponse {
  [responseOf]: ServerResponse | null;
}

/** The route's `config.tidings.timeoutMs`, checked: a bad one is refused when the route is added. */
function routeTimeout(config: { tidings?: TidingsRouteOptions } | undefined): number | undefined {
  return checkTimeout('config.tidings.timeoutMs', config?.tidings?.timeoutMs);
}

const plugin: FastifyPluginAsync<TidingsPluginOptions> = async (fastify, options) => {
  const settings = resolvePluginOptions(options);
  const { endpoint } = settings;
  const drain = new Drain(endpoint.name, settings.drainTimeoutMs);

  fastify.decorate('tidings', endpoint);
  fastify.decorateRequest(responseOf, null);
  fastify.addHook('onRequest', (request, reply, done) => {
    (request as unknown as WithResponse)[responseOf] = reply.raw;
    done();
  });
  // A bad route timeout fails app.route() (a ConfigurationError), not every request to the route.
  fastify.addHook('onRoute', (route) => {
    routeTimeout(route.config);
  });

  function awaitReply(
    this: FastifyRequest,
    definition: MessageDefinition,
    payload: unknown,
    requestOptions: AwaitReplyOptions<MessageDefinition | 'code' | undefined> = {},
  ): Promise<unknown> {
    const response = (this as unknown as WithResponse)[responseOf];
    if (response === null) {
      return Promise.reject(
        withHttpStatus(
          new UsageError(
            "request.awaitReply() was called on a request the Tidings plugin did not see (its onRequest hook did not run): register tidingsPlugin in this route's context, before the route.",
          ),
        ),
      );
    }
    if (drain.closed) {
      return Promise.reject(
        withHttpStatus(
          new ServerClosingError(endpoint.name, definition.name, settings.drainTimeoutMs),
        ),
      );
    }
    // `undefined` means "not given": the route's, then the plugin's, then the endpoint's apply.
    const timeoutMs =
      requestOptions.timeoutMs ?? routeTimeout(this.routeOptions.config) ?? settings.timeoutMs;
    const tracked = drain.track(definition.name, requestOptions.signal);
    return requestForHttp(endpoint, definition, payload, {
      ...requestOptions,
      validate: requestOptions.validate ?? settings.validate,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      signal: tracked.signal,
      response,
    } as Parameters<typeof requestForHttp>[3])
      .catch((error: unknown) => {
        // Ended at the drain deadline: the server is closing (503), not a client leaving (499).
        if (error instanceof RequestAbortedError && error.cause instanceof ServerClosingError) {
          throw withHttpStatus(error.cause);
        }
        throw error;
      })
      .finally(() => {
        tracked.done();
        // Answered while the server closes: without this a keep-alive client holds its socket,
        // and so close(), open until the keep-alive timeout.
        if (drain.begun && !response.headersSent && this.raw.httpVersionMajor !== 2) {
          response.setHeader('connection', 'close');
        }
      });
  }
  fastify.decorateRequest('awaitReply', awaitReply as AwaitReply);

  // preClose runs before Fastify's server.close(), which waits for requests in flight: start the
  // drain there, or close would wait out each request's whole timeout.
  fastify.addHook('preClose', (done) => {
    drain.begin();
    done();
  });
  let managing = false;
  if (settings.manageLifecycle) {
    // onReady runs before listen() accepts connections: no route can send through a stopped endpoint.
    fastify.addHook('onReady', async () => {
      managing = true;
      addManager(endpoint);
      if (endpoint.state === 'created') await endpoint.start();
    });
  }
  fastify.addHook('onClose', async () => {
    await drain.settled();
    if (managing && removeManager(endpoint)) await endpoint.stop();
  });
};

/**
 * The Tidings Fastify plugin: `app.register(tidingsPlugin, { endpoint })`. Starts the endpoint
 * before the server listens and stops it when the server closes, after pending web requests got
 * their replies or, at `drainTimeoutMs`, a 503; adds `app.tidings` (the endpoint) and
 * `request.awaitReply(...)` to every route.
 */
export const tidingsPlugin = fp(plugin, { fastify: '5.x', name: '@tidings/fastify' });
