import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type Endpoint,
  isTidingsError,
  type MessageDefinition,
  type TidingsError,
} from '@tidings/core';
import type { AwaitReply, AwaitReplyOptions } from './await-reply.js';
import { clientClosedRequestStatus, httpErrorBody } from './http-status.js';
import { checkTimeout } from './options.js';
import { requestForHttp } from './request-for-http.js';

export interface TidingsMiddlewareOptions {
  /** The endpoint requests go through. Start it before the server listens; stop it after it closed. */
  readonly endpoint: Endpoint;
  /**
   * How long a request waits for its reply unless `awaitReply` is given `timeoutMs`.
   * @default the endpoint's `requestTimeoutMs`
   */
  readonly timeoutMs?: number;
  /**
   * Check payloads against the message's schema before sending (a failure answers 400).
   * @default true
   */
  readonly validate?: boolean;
}

/** What `tidingsMiddleware` adds to each request. */
export interface TidingsRequestFields {
  awaitReply: AwaitReply;
}

type Next = (error?: unknown) => void;

/**
 * Connect-style middleware (Express, Connect, plain `node:http` chains): adds
 * `req.awaitReply(...)`, which aborts the moment the client disconnects. Pair it with
 * `tidingsErrorHandler()` to turn Tidings errors into HTTP answers.
 */
export function tidingsMiddleware(
  options: TidingsMiddlewareOptions,
): (req: IncomingMessage, res: ServerResponse, next: Next) => void {
  const { endpoint } = options;
  const timeoutMs = checkTimeout('timeoutMs', options.timeoutMs);
  const validate = options.validate ?? true;
  return (req, res, next) => {
    const awaitReply = (
      definition: MessageDefinition,
      payload: unknown,
      requestOptions: AwaitReplyOptions<MessageDefinition | 'code' | undefined> = {},
    ): Promise<unknown> => {
      // `undefined` means "not given": `{ timeoutMs: undefined }` keeps the middleware's timeout.
      const timeout = requestOptions.timeoutMs ?? timeoutMs;
      return requestForHttp(endpoint, definition, payload, {
        ...requestOptions,
        validate: requestOptions.validate ?? validate,
        ...(timeout === undefined ? {} : { timeoutMs: timeout }),
        response: res,
      } as Parameters<typeof requestForHttp>[3]);
    };
    (req as IncomingMessage & TidingsRequestFields).awaitReply = awaitReply as AwaitReply;
    next();
  };
}

export interface TidingsErrorHandlerOptions {
  /**
   * Called with each Tidings error answered with a 5xx status, for your logger: the HTTP body
   * says only what the client may know (no broker address, no bytes of a reply), the error and
   * its `cause` hold the details.
   */
  readonly log?: (error: TidingsError, req: IncomingMessage) => void;
}

/**
 * Connect-style error middleware (four arguments): answers Tidings errors with their HTTP status
 * and `{ statusCode, code, message }`, sends nothing to a client that is gone, and passes any
 * other error on.
 */
export function tidingsErrorHandler(
  options: TidingsErrorHandlerOptions = {},
): (error: unknown, req: IncomingMessage, res: ServerResponse, next: Next) => void {
  return (error, req, res, next) => {
    if (!isTidingsError(error) || res.headersSent) {
      next(error);
      return;
    }
    const body = httpErrorBody(error);
    if (body.statusCode >= 500) options.log?.(error, req);
    if (res.destroyed || res.socket === null || res.socket.destroyed) {
      // The client is gone: answering would only write to a closed socket.
      res.statusCode = clientClosedRequestStatus;
      return;
    }
    res.statusCode = body.statusCode;
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(body));
  };
}
