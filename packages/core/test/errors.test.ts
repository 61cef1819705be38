import { describe, expect, it } from 'vitest';
import {
  DestinationNotFoundError,
  isTidingsError,
  MessageTooLargeError,
  NoRouteError,
  RequestTimeoutError,
  TidingsError,
  TransportUnavailableError,
  ValidationError,
} from '../src/index.ts';
import { redactSecrets, redactUrl } from '../src/transport/index.ts';

describe('errors', () => {
  it('carry a stable code, a cause and whether retrying may help', () => {
    const cause = new Error('socket closed');
    const unavailable = new TransportUnavailableError('broker unreachable', { cause });
    expect(unavailable).toBeInstanceOf(TidingsError);
    expect(unavailable).toMatchObject({
      code: 'TIDINGS_TRANSPORT_UNAVAILABLE',
      isRetryable: true,
      cause,
      name: 'TransportUnavailableError',
    });
    expect(new NoRouteError('a.B')).toMatchObject({
      code: 'TIDINGS_NO_ROUTE',
      isRetryable: false,
      messageType: 'a.B',
    });
    expect(new DestinationNotFoundError('q').message).toMatch(/Start the receiving endpoint/);
    expect(new RequestTimeoutError('a.B', 100, 'c').isRetryable).toBe(true);
    expect(isTidingsError(new Error('x'))).toBe(false);
  });

  it('say what to do', () => {
    expect(new MessageTooLargeError('a.B', 10, 5, 'rabbitmq').message).toMatch(/claim check/);
    expect(
      new ValidationError('a.B', [{ message: 'Required', path: ['order', 'id'] }]).message,
    ).toBe("Message 'a.B' failed validation: order.id: Required");
  });
});

describe('redaction', () => {
  it('removes passwords and secret query parameters from URLs', () => {
    expect(redactUrl('amqp://user:s3cret@host:5672/vh')).toBe('amqp://user:***@host:5672/vh');
    expect(redactUrl('amqps://host/?sig=abc&x=1')).toBe('amqps://host/?sig=***&x=1');
    expect(redactUrl('not a url s3cret')).toBe('<unparseable url>');
  });

  it('removes known secrets from any text', () => {
    expect(redactSecrets('failed: SharedAccessKey=abc123 at host', ['abc123'])).toBe(
      'failed: SharedAccessKey=*** at host',
    );
  });
});
