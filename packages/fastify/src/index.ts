export type { AwaitReply, AwaitReplyOptions } from './await-reply.js';
export {
  type TidingsErrorHandlerOptions,
  type TidingsMiddlewareOptions,
  type TidingsRequestFields,
  tidingsErrorHandler,
  tidingsMiddleware,
} from './connect-middleware.js';
export { ServerClosingError } from './drain.js';
export { tidingsPlugin } from './fastify-plugin.js';
export {
  clientClosedRequestStatus,
  type HttpErrorBody,
  httpErrorBody,
  httpStatusFor,
  publicMessageFor,
  withHttpStatus,
  withPublicMessage,
} from './http-status.js';
export {
  type TidingsPluginOptions,
  type TidingsRouteOptions,
  tidingsPluginDefaults,
} from './options.js';
export {
  abortOnDisconnect,
  ClientDisconnectedError,
  type HttpRequestOptions,
  type HttpResponseLike,
  requestForHttp,
} from './request-for-http.js';
