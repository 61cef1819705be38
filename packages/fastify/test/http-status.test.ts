import {
  ConfigurationError,
  DeserializationError,
  DestinationNotFoundError,
  EndpointStoppedError,
  ForbiddenKeyError,
  MessageTooLargeError,
  NoRouteError,
  RemoteFailureError,
  ReplyMismatchError,
  RequestAbortedError,
  RequestTimeoutError,
  SendOnlyEndpointError,
  TransportError,
  TransportUnavailableError,
  ValidationError,
} from '@tidings/core';
import { describe, expect, it } from 'vitest';
import { httpErrorBody, httpStatusFor, withHttpStatus } from '../src/index.ts';

describe('httpStatusFor', () => {
  it.each([
    [new RequestTimeoutError('m', 10, 'c'), 504],
    [new ValidationError('m', [{ message: 'bad' }]), 400],
    [new MessageTooLargeError('m', 10, 5, 't'), 413],
    [new RequestAbortedError('m', undefined), 499],
    [new EndpointStoppedError('e'), 503],
    [new TransportUnavailableError('down'), 503],
    [new DestinationNotFoundError('q'), 502],
    [new ReplyMismatchError('a', 'b'), 502],
    [new DeserializationError('The body of a.B is not valid JSON'), 502],
    [new TransportError('broker said no'), 502],
    [new RemoteFailureError({ messageId: 'm-1', exceptionType: 'TypeError' }), 502],
    [new ForbiddenKeyError('m', ['__proto__']), 400],
    [new NoRouteError('m'), 500],
    [new SendOnlyEndpointError('e', 'x'), 500],
    [new ConfigurationError('c'), 500],
    [new Error('anything else'), 500],
  ])('maps %s to %i', (error, status) => {
    expect(httpStatusFor(error)).toBe(status);
  });
});

describe('httpErrorBody', () => {
  it('keeps the code and message of a Tidings error', () => {
    const error = new NoRouteError('sales.PlaceOrder');
    expect(httpErrorBody(error)).toEqual({
      statusCode: 500,
      code: 'TIDINGS_NO_ROUTE',
      message: error.message,
    });
    expect(error.message).toMatch(/add it to the endpoint's `routes`/);
  });

  it('keeps broker addresses and reply bytes out: transport and parse errors get a generic message', () => {
    for (const error of [
      new TransportUnavailableError('Connection to 10.1.2.3:9092 refused'),
      new TransportError('Broker 10.1.2.3:9092 closed the channel'),
      new DeserializationError(
        "The body of 'a.B' is not valid JSON (Unexpected token 's', \"s3cret\")",
      ),
      new RemoteFailureError({
        messageId: 'm-1',
        exceptionType: 'Error',
        message: 'connect 10.1.2.3:5432 s3cret',
      }),
    ]) {
      const body = httpErrorBody(error);
      expect(body.code).toBe(error.code);
      expect(body.message).not.toMatch(/10\.1\.2\.3|s3cret/);
    }
  });

  it('answers with the status requestForHttp gave the error', () => {
    const replyFailedSchema = withHttpStatus(new ValidationError('m', [{ message: 'bad' }]), 502);
    expect(httpErrorBody(replyFailedSchema).statusCode).toBe(502);
  });

  it('does not reveal the message of other errors', () => {
    const body = httpErrorBody(new Error('password=hunter2 in a connection string'));
    expect(body).toEqual({
      statusCode: 500,
      code: 'INTERNAL_SERVER_ERROR',
      message: 'Internal Server Error',
    });
  });
});

describe('withHttpStatus', () => {
  it('adds statusCode and keeps the class', () => {
    const error = withHttpStatus(new RequestTimeoutError('m', 10, 'c'));
    expect(error).toBeInstanceOf(RequestTimeoutError);
    expect((error as unknown as { statusCode: number }).statusCode).toBe(504);
  });

  it('leaves other errors alone', () => {
    const error = withHttpStatus(new Error('x'));
    expect('statusCode' in error).toBe(false);
  });
});
