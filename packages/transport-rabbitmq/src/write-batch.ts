import type { Socket } from 'node:net';
import type { ChannelModel } from 'amqplib';

/**
 * One socket write per pass of amqplib's muxer. amqplib writes every frame to the socket on its
 * own: one syscall each, the largest part of the client's CPU under load and of a round trip's
 * cost at low concurrency. Its frames reach the socket from its muxer, which drains every
 * channel's buffer in one `setImmediate` callback; the frames written there are gathered, and
 * leave as one buffer in one `write` as soon as that callback is done (a microtask), which costs
 * far less than corking and a `writev` of the same frames. Waiting for an immediate of its own
 * would add a turn of the event loop, and a poll, to every message sent.
 *
 * Deferred work (coalesced acks) runs once at the end of the pass (`setImmediate`, queued before
 * the muxer's, so its frames go with the pass's publishes).
 */
export class WriteBatch {
  private chunks: Buffer[] = [];
  private releaseQueued = false;
  private scheduled = false;
  private readonly deferred = new Set<() => void>();

  private constructor(private readonly socket: Socket | undefined) {}

  /** Batches the connection's writes; without a socket to batch, `defer` still runs once per pass. */
  static attach(connection: ChannelModel): WriteBatch {
    const socket = (connection as unknown as { connection?: { stream?: Socket } }).connection
      ?.stream;
    if (socket === undefined || typeof socket.write !== 'function')
      return new WriteBatch(undefined);
    const batch = new WriteBatch(socket);
    const write = socket.write;
    socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
      const [chunk] = args;
      // Only what amqplib writes (bare buffers) is gathered; anything else goes out in order.
      if (args.length !== 1 || !Buffer.isBuffer(chunk)) {
        batch.release();
        return write.apply(this, args);
      }
      batch.chunks.push(chunk);
      batch.queueRelease();
      // The socket's own state: false while it waits to drain, so amqplib holds back.
      return !socket.writableNeedDrain;
    } as Socket['write'];
    batch.write = (buffer) => write.call(socket, buffer);
    // What was gathered goes before the end of the stream (a connection's last frames).
    const end = socket.end;
    socket.end = function (this: Socket, ...args: Parameters<Socket['end']>) {
      batch.release();
      return end.apply(this, args);
    } as Socket['end'];
    return batch;
  }

  private write: (buffer: Buffer) => boolean = () => true;

  /** Runs `work` (once, however often deferred) at the end of this pass, before the writes leave. */
  defer(work: () => void): void {
    this.deferred.add(work);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.run);
  }

  private readonly run = (): void => {
    for (const work of this.deferred) {
      this.deferred.delete(work);
      work();
    }
    this.scheduled = false;
  };

  private queueRelease(): void {
    if (this.releaseQueued) return;
    this.releaseQueued = true;
    queueMicrotask(this.releaseNow);
  }

  private readonly releaseNow = (): void => {
    this.releaseQueued = false;
    this.release();
  };

  /** Writes what was gathered, as one buffer. */
  private release(): void {
    const chunks = this.chunks;
    if (chunks.length === 0) return;
    this.chunks = [];
    const socket = this.socket;
    if (socket === undefined || socket.destroyed || socket.writableEnded) return;
    this.write(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
  }
}
