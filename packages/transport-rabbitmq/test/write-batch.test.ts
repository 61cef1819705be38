import type { ChannelModel } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { WriteBatch } from '../src/write-batch.ts';

/** A socket that records each write it gets, as the kernel would see them. */
function fakeConnection() {
  const writes: string[] = [];
  const socket = {
    destroyed: false,
    writableEnded: false,
    writableNeedDrain: false,
    write(chunk: Buffer | string, ..._rest: unknown[]) {
      writes.push(chunk.toString());
      return true;
    },
    end() {
      writes.push('<end>');
      socket.writableEnded = true;
    },
  };
  const connection = { connection: { stream: socket } } as unknown as ChannelModel;
  return { connection, socket, writes };
}

const nextPass = () => new Promise((resolve) => setImmediate(resolve));

describe('WriteBatch', () => {
  it('writes the frames of one pass, deferred acks last, as one buffer', async () => {
    const { connection, socket, writes } = fakeConnection();
    const batch = WriteBatch.attach(connection);
    socket.write(Buffer.from('publish-1;'));
    batch.defer(() => socket.write(Buffer.from('ack;')));
    socket.write(Buffer.from('publish-2;'));
    expect(writes).toEqual([]);
    await nextPass();
    expect(writes).toEqual(['publish-1;publish-2;ack;']);
    socket.write(Buffer.from('next-pass;'));
    await nextPass();
    expect(writes).toEqual(['publish-1;publish-2;ack;', 'next-pass;']);
  });

  it('keeps the order with writes it does not gather, and before the end of the stream', () => {
    const { connection, socket, writes } = fakeConnection();
    WriteBatch.attach(connection);
    socket.write(Buffer.from('frame;'));
    socket.write('text', 'utf8');
    socket.write(Buffer.from('close;'));
    socket.end();
    expect(writes).toEqual(['frame;', 'text', 'close;', '<end>']);
  });

  it('tells amqplib to hold back while the socket waits to drain', () => {
    const { connection, socket } = fakeConnection();
    WriteBatch.attach(connection);
    expect(socket.write(Buffer.from('a'))).toBe(true);
    socket.writableNeedDrain = true;
    expect(socket.write(Buffer.from('b'))).toBe(false);
  });
});
