import type { ServiceBusReceivedMessage } from '@azure/service-bus';
import { Headers } from '@tidings/core';
import { PACKED_HEADERS } from '@tidings/core/transport';
import { describe, expect, it } from 'vitest';
import { toIncomingMessage, toServiceBusMessage } from '../src/azure-service-bus-headers.ts';

const received = (fields: Partial<ServiceBusReceivedMessage>) =>
  ({ deliveryCount: 0, ...fields }) as ServiceBusReceivedMessage;

describe('message mapping', () => {
  const headers = {
    [Headers.MessageId]: 'm-1',
    [Headers.CorrelationId]: 'c-1',
    [Headers.ReplyTo]: 'Client.c1',
    [Headers.ContentType]: 'application/json',
    [Headers.MessageType]: 'sales.PlaceOrder',
    [Headers.Intent]: 'send',
    [Headers.ConversationId]: 'm-1',
    'x-tenant': 'acme',
  };

  it('puts id, correlation id, reply-to, content type and type on native properties, packs the other bus headers into one application property', () => {
    const out = toServiceBusMessage(
      { messageId: 'm-1', headers, body: Buffer.from('{"a":1}') },
      undefined,
    );
    expect(out).toMatchObject({
      messageId: 'm-1',
      correlationId: 'c-1',
      replyTo: 'Client.c1',
      contentType: 'application/json',
      subject: 'sales.PlaceOrder',
    });
    // The conversation id equals the message id: left out, restored on receipt.
    expect(out.applicationProperties).toEqual({
      [PACKED_HEADERS]: JSON.stringify({ intent: 'send' }),
      'x-tenant': 'acme',
    });
    expect(Buffer.from(out.body as Buffer).toString()).toBe('{"a":1}');
    expect(out.scheduledEnqueueTimeUtc).toBeUndefined();
  });

  it('schedules a delayed message', () => {
    const before = Date.now();
    const out = toServiceBusMessage({ messageId: 'm', headers: {}, body: new Uint8Array() }, 5000);
    expect(out.scheduledEnqueueTimeUtc?.getTime()).toBeGreaterThanOrEqual(before + 5000);
  });

  it('round-trips every header and counts deliveries from 1', () => {
    const out = toServiceBusMessage(
      { messageId: 'm-1', headers, body: Buffer.from('x') },
      undefined,
    );
    const back = toIncomingMessage(
      received({ ...out, deliveryCount: 2 } as Partial<ServiceBusReceivedMessage>),
      'Sales',
    );
    expect(back.headers).toEqual(headers);
    expect(back.messageId).toBe('m-1');
    expect(back.deliveryCount).toBe(3);
    expect(back.queue).toBe('Sales');
  });

  it('a delayed retry gets a native id of its own per round; the bus id round-trips', () => {
    const retry = (messageId: string, round: string) =>
      toServiceBusMessage(
        {
          messageId,
          headers: { ...headers, [Headers.MessageId]: messageId, [Headers.DelayedRetries]: round },
          body: Buffer.from('x'),
        },
        10_000,
      );
    const first = retry('m-1', '1');
    expect(first.messageId).toBe('m-1/retry-1');
    expect(retry('m-1', '2').messageId).toBe('m-1/retry-2');
    const back = toIncomingMessage(received(first as Partial<ServiceBusReceivedMessage>), 'Sales');
    expect(back.messageId).toBe('m-1');
    expect(back.headers[Headers.DelayedRetries]).toBe('1');
    // Service Bus refuses ids over 128 characters; a long bus id is hashed for the native one.
    const long = 'x'.repeat(128);
    const longRetry = retry(long, '3');
    expect((longRetry.messageId as string).length).toBeLessThanOrEqual(128);
    expect(longRetry.messageId).toMatch(/^[0-9a-f]{64}\/retry-3$/);
    expect(longRetry.applicationProperties?.[Headers.MessageId]).toBe(long);
  });

  it('a returned message gets a native id of its own per return, and per retry round after it', () => {
    const sent = (extra: Record<string, string>) =>
      toServiceBusMessage(
        {
          messageId: 'm-1',
          headers: { ...headers, [Headers.MessageId]: 'm-1', ...extra },
          body: Buffer.from('x'),
        },
        undefined,
      ).messageId;
    expect(sent({ [Headers.Returns]: '1' })).toBe('m-1/return-1');
    expect(sent({ [Headers.Returns]: '2', [Headers.DelayedRetries]: '1' })).toBe(
      'm-1/return-2/retry-1',
    );
    // Counts come from the wire: junk counts as none, and never reaches the native id.
    expect(sent({ [Headers.Returns]: 'x'.repeat(300), [Headers.DelayedRetries]: '-1' })).toBe(
      'm-1',
    );
    const long = 'z'.repeat(128);
    expect(
      sent({ [Headers.MessageId]: long, [Headers.Returns]: '3', [Headers.DelayedRetries]: '2' }),
    ).toMatch(/^[0-9a-f]{64}\/return-3\/retry-2$/);
  });

  it('an id too long for Service Bus is hashed for the native one and round-trips beside it', () => {
    const long = 'y'.repeat(200);
    const out = toServiceBusMessage(
      {
        messageId: long,
        headers: { ...headers, [Headers.MessageId]: long },
        body: Buffer.from('x'),
      },
      undefined,
    );
    expect(out.messageId).toMatch(/^[0-9a-f]{64}$/);
    const back = toIncomingMessage(received(out as Partial<ServiceBusReceivedMessage>), 'Sales');
    expect(back.messageId).toBe(long);
  });

  it('reads a message from another sender: strings from any property type, bodies of any kind', () => {
    const foreign = toIncomingMessage(
      received({
        messageId: 42,
        body: { n: 1 },
        applicationProperties: { [Headers.MessageType]: 'x.Y', count: 3, at: new Date(0) },
      }),
      'Q',
    );
    expect(foreign.messageId).toBe('42');
    expect(foreign.headers).toEqual({
      [Headers.MessageId]: '42',
      [Headers.MessageType]: 'x.Y',
      count: '3',
      at: '1970-01-01T00:00:00.000Z',
    });
    expect(Buffer.from(foreign.body).toString()).toBe('{"n":1}');
    expect(toIncomingMessage(received({ body: 'text' }), 'Q').body).toEqual(Buffer.from('text'));
    expect(toIncomingMessage(received({ body: undefined }), 'Q').body.byteLength).toBe(0);
  });

  it('a packed property that is not a JSON object makes the message unreadable, with the reason', () => {
    const bad = toIncomingMessage(
      received({ messageId: 'm', applicationProperties: { [PACKED_HEADERS]: '{"intent": ' } }),
      'Q',
    );
    expect(bad.unreadableReason).toContain(`'${PACKED_HEADERS}' is not valid JSON`);
    const notText = toIncomingMessage(
      received({ messageId: 'm', applicationProperties: { [PACKED_HEADERS]: 5 } }),
      'Q',
    );
    expect(notText.unreadableReason).toContain('must be a string');
  });

  it('an application property named __proto__ is left out and reaches no prototype', () => {
    const hostile = toIncomingMessage(
      received({
        messageId: 'm',
        applicationProperties: JSON.parse('{"__proto__":{"polluted":"yes"},"x-tenant":"acme"}'),
      }),
      'Q',
    );
    expect(hostile.headers).toEqual({ [Headers.MessageId]: 'm', 'x-tenant': 'acme' });
    expect(Object.getPrototypeOf(hostile.headers)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('a header set as an application property wins over the native property', () => {
    const both = toIncomingMessage(
      received({
        correlationId: 'native',
        applicationProperties: { [Headers.CorrelationId]: 'header' },
      }),
      'Q',
    );
    expect(both.headers[Headers.CorrelationId]).toBe('header');
  });
});
