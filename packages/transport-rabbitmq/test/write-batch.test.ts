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
  /**
   * amqplib's way to the socket: each frame goes into its channel's buffer, and its muxer writes
   * what the buffers hold in a `setImmediate` callback, scheduled from a `nextTick`.
   */
  function muxer(socket: { write(chunk: Buffer): unknown }) {
    const buffered: Buffer[] = [];
    let scheduled = false;
    return (frame: string) => {
      buffered.push(Buffer.from(frame));
      if (scheduled) return;
      scheduled = true;
      process.nextTick(() =>
        setImmediate(() => {
          scheduled = false;
          for (const chunk of buffered.splice(0)) socket.write(chunk);
        }),
      );
    };
  }

  it('writes the frames of one muxer pass as one buffer as soon as the pass is done', async () => {
    const { connection, socket, writes } = fakeConnection();
    WriteBatch.attach(connection);
    const send = muxer(socket);
    send('publish-1;');
    send('publish-2;');
    expect(writes).toEqual([]);
    // Checked in the same turn of the event loop as the muxer's pass: no turn of its own.
    const seen = await new Promise<string[]>((resolve) =>
      process.nextTick(() => setImmediate(() => resolve([...writes]))),
    );
    expect(seen).toEqual(['publish-1;publish-2;']);
    send('next-pass;');
    await nextPass();
    await nextPass();
    expect(writes).toEqual(['publish-1;publish-2;', 'next-pass;']);
  });

  it("deferred acks run before the muxer's pass and leave with the pass's publishes", async () => {
    const { connection, socket, writes } = fakeConnection();
    const batch = WriteBatch.attach(connection);
    const send = muxer(socket);
    batch.defer(() => send('ack;'));
    send('publish;');
    await nextPass();
    await nextPass();
    expect(writes).toEqual(['publish;ack;']);
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
