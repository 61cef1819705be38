import type { Socket } from 'node:net';
import type { ChannelModel } from 'amqplib';

/**
 * One socket write per event loop pass. amqplib writes every frame to the socket on its own: one
 * syscall each, the largest part of the client's CPU under load and of a round trip's cost at low
 * concurrency. The frames written in one pass are gathered instead; once the pass's callbacks and
 * promises have run (`setImmediate`), the deferred work (coalesced acks) adds its frames and the
 * lot leaves as one buffer in one `write`, which costs far less than corking and a `writev` of the
 * same frames.
 */
export class WriteBatch {
  private chunks: Buffer[] = [];
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
      batch.schedule();
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
