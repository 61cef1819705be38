import {
  type Endpoint,
  type LongTimer,
  type MessageDefinition,
  setLongTimeout,
  UsageError,
} from '@tidings/core';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { AwaitReply, AwaitReplyOptions } from './await-reply.js';
import { withHttpStatus } from './http-status.js';
import {
  checkTimeout,
  resolvePluginOptions,
  type TidingsPluginOptions,
  type TidingsRouteOptions,
} from './options.js';
import { type HttpResponseLike, requestForHttp } from './request-for-http.js';

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
  [responseOf]: HttpResponseLike | null;
}

const plugin: FastifyPluginAsync<TidingsPluginOptions> = async (fastify, options) => {
  const settings = resolvePluginOptions(options);
  const { endpoint } = settings;
  let waiting = 0;
  let drained: (() => void) | undefined;

  fastify.decorate('tidings', endpoint);
  fastify.decorateRequest(responseOf, null);
  fastify.addHook('onRequest', (request, reply, done) => {
    (request as unknown as WithResponse)[responseOf] = reply.raw;
    done();
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
    const timeoutMs =
      requestOptions.timeoutMs ??
      checkTimeout('config.tidings.timeoutMs', this.routeOptions.config.tidings?.timeoutMs) ??
      settings.timeoutMs;
    waiting++;
    return requestForHttp(endpoint, definition, payload, {
      validate: settings.validate,
      ...requestOptions,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      response,
    } as Parameters<typeof requestForHttp>[3]).finally(() => {
      waiting--;
      if (waiting === 0) drained?.();
    });
  }
  fastify.decorateRequest('awaitReply', awaitReply as AwaitReply);

  if (settings.manageLifecycle) {
    // onReady runs before listen() accepts connections: no route can send through a stopped endpoint.
    fastify.addHook('onReady', async () => {
      if (endpoint.state === 'created') await endpoint.start();
    });
    fastify.addHook('onClose', async () => {
      if (waiting > 0) {
        // Let requests still awaiting a reply get it (or time out) before the endpoint stops.
        let timer: LongTimer | undefined;
        await new Promise<void>((resolve) => {
          drained = resolve;
          timer = setLongTimeout(resolve, settings.drainTimeoutMs);
        });
        timer?.clear();
        drained = undefined;
      }
      await endpoint.stop();
    });
  }
};

/**
 * The Tidings Fastify plugin: `app.register(tidingsPlugin, { endpoint })`. Starts the endpoint
 * before the server listens and stops it when the server closes, after pending web requests got
 * their replies; adds `app.tidings` (the endpoint) and `request.awaitReply(...)` to every route.
 */
export const tidingsPlugin = fp(plugin, { fastify: '5.x', name: '@tidings/fastify' });
