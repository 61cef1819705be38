import { describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  createInMemoryTransport,
  DestinationNotFoundError,
  silentLogger,
} from '../src/index.ts';
import type { IncomingTransportMessage } from '../src/transport/index.ts';

const message = (id: string) => ({
  messageId: id,
  headers: { 'tidings.message-id': id },
  body: Buffer.from('{}'),
});

describe('in-memory transport', () => {
  it('validates its options', () => {
    expect(() => createInMemoryTransport({ maxMessageSizeBytes: 0 })).toThrow(ConfigurationError);
  });

  it('redelivers an abandoned message with a higher delivery count, first in line', async () => {
    const transport = createInMemoryTransport();
    const connection = await transport.openEndpoint(
      { endpointName: 'q', inputQueue: 'q', errorQueue: 'e', subscriptions: [] },
      { logger: silentLogger },
    );
    const seen: Array<[string, number | undefined]> = [];
    await connection.dispatch([
      { message: message('a'), destination: { kind: 'queue', queue: 'q' } },
      { message: message('b'), destination: { kind: 'queue', queue: 'q' } },
    ]);
    expect(transport.queueDepth('q')).toBe(2);
    await connection.startReceiving({
      concurrency: 1,
      onMessage: async (m: IncomingTransportMessage) => {
        seen.push([m.messageId, m.deliveryCount]);
        return m.messageId === 'a' && m.deliveryCount === 1 ? 'abandon' : 'complete';
      },
    });
    await expect.poll(() => seen.length).toBe(3);
    expect(seen).toEqual([
      ['a', 1],
      ['a', 2],
      ['b', 1],
    ]);
    await connection.close();
  });

  it('sends nothing from a batch with an unknown destination', async () => {
    const transport = createInMemoryTransport();
    const connection = await transport.openEndpoint(
      { endpointName: 'q', inputQueue: 'q', errorQueue: 'e', subscriptions: [] },
      { logger: silentLogger },
    );
    await expect(
      connection.dispatch([
        { message: message('a'), destination: { kind: 'queue', queue: 'q' } },
        { message: message('b'), destination: { kind: 'queue', queue: 'nope' } },
      ]),
    ).rejects.toBeInstanceOf(DestinationNotFoundError);
    expect(transport.queueDepth('q')).toBe(0);
  });

  it('keeps subscriptions per event type; unsubscribe stops delivery', async () => {
    const transport = createInMemoryTransport();
    const sub = await transport.openEndpoint(
      { endpointName: 's', inputQueue: 's', errorQueue: 'e', subscriptions: ['t.Evt'] },
      { logger: silentLogger },
    );
    const pub = await transport.openEndpoint(
      { endpointName: 'p', errorQueue: 'e', subscriptions: [] },
      { logger: silentLogger },
    );
    await pub.dispatch([
      { message: message('1'), destination: { kind: 'publish', messageType: 't.Evt' } },
    ]);
    expect(transport.queueDepth('s')).toBe(1);
    await sub.unsubscribe('t.Evt');
    await pub.dispatch([
      { message: message('2'), destination: { kind: 'publish', messageType: 't.Evt' } },
    ]);
    expect(transport.queueDepth('s')).toBe(1);
  });
});
