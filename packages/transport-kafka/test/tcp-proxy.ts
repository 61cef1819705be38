import { Transform } from 'node:stream';
import { type ProxyInterceptor, startTcpProxy, type TcpProxy } from '@tidings/transport-tests';

const JOIN_GROUP = 11;
/** Not retried by kafkajs: its consumer stops for good (`restart: false` on its crash event). */
const GROUP_AUTHORIZATION_FAILED = 30;

/**
 * Passes Kafka frames on whole (a 4-byte size, then that many bytes), handing each to `each`
 * first, which may change it in place. A frame's chunks are joined once it is complete.
 */
function frames(each: (frame: Buffer) => void): Transform {
  let held: Buffer[] = [];
  let heldBytes = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      held.push(chunk);
      heldBytes += chunk.length;
      try {
        while (heldBytes >= 4) {
          const first = held[0] as Buffer;
          const size = (first.length >= 4 ? first : Buffer.concat(held, heldBytes)).readInt32BE(0);
          if (size < 0) throw new Error(`not a Kafka frame: size ${size}`);
          if (heldBytes < 4 + size) break;
          const all = held.length === 1 ? first : Buffer.concat(held, heldBytes);
          const frame = all.subarray(0, 4 + size);
          each(frame);
          this.push(frame);
          const rest = all.subarray(4 + size);
          held = rest.length > 0 ? [rest] : [];
          heldBytes = rest.length;
        }
        done();
      } catch (error) {
        // The proxy drops the connection.
        done(error as Error);
      }
    },
  });
}

/**
 * Answers the JoinGroup requests of the groups in `failing` (group id → how many more) with
 * GROUP_AUTHORIZATION_FAILED, as a cluster whose ACLs refuse the group would. kafkajs sends
 * JoinGroup v0–v5: request header v1, response header v0.
 */
function joinFailures(failing: Map<string, number>, onFailed: () => void): ProxyInterceptor {
  const toFail = new Set<number>();
  const versions = new Map<number, number>();
  return {
    toUpstream: frames((frame) => {
      if (frame.readInt16BE(4) !== JOIN_GROUP) return;
      const correlationId = frame.readInt32BE(8);
      const clientIdLength = Math.max(0, frame.readInt16BE(12));
      const groupAt = 14 + clientIdLength;
      const group = frame.toString('utf8', groupAt + 2, groupAt + 2 + frame.readInt16BE(groupAt));
      const left = failing.get(group) ?? 0;
      if (left === 0) return;
      failing.set(group, left - 1);
      toFail.add(correlationId);
      versions.set(correlationId, frame.readInt16BE(6));
    }),
    toClient: frames((frame) => {
      const correlationId = frame.readInt32BE(4);
      if (!toFail.delete(correlationId)) return;
      // From v2 on the response starts with throttle_time_ms, then error_code.
      frame.writeInt16BE(
        GROUP_AUTHORIZATION_FAILED,
        (versions.get(correlationId) ?? 0) >= 2 ? 12 : 8,
      );
      versions.delete(correlationId);
      onFailed();
    }),
  };
}

/** One proxy per broker, and the options that route a client through them. */
export async function proxyCluster(brokers: readonly string[]): Promise<{
  readonly brokers: string[];
  mapBrokerAddress(address: { host: string; port: number }): { host: string; port: number };
  cutAll(): number;
  /** Refuses new connections to every broker until `resumeAll`: the cluster looks down. */
  pauseAll(): void;
  resumeAll(): void;
  /** The next `count` joins of the group are refused (GROUP_AUTHORIZATION_FAILED). */
  failJoins(groupId: string, count: number): void;
  /** Joins refused so far. */
  readonly joinsFailed: number;
  close(): Promise<void>;
}> {
  const proxies = new Map<string, TcpProxy>();
  const failing = new Map<string, number>();
  let joinsFailed = 0;
  for (const broker of brokers) {
    const [host, port] = broker.split(':') as [string, string];
    proxies.set(
      broker,
      await startTcpProxy({ host, port: Number(port) }, () =>
        joinFailures(failing, () => joinsFailed++),
      ),
    );
  }
  const byProxyPort = new Map([...proxies.values()].map((p) => [p.port, p]));
  return {
    brokers: [...proxies.values()].map((p) => `127.0.0.1:${p.port}`),
    // Brokers advertise their own addresses in metadata: send those through the proxies too.
    mapBrokerAddress(address) {
      if (address.host === '127.0.0.1' && byProxyPort.has(address.port)) return address;
      const proxy =
        proxies.get(`${address.host}:${address.port}`) ??
        (address.host === 'localhost' ? proxies.get(`127.0.0.1:${address.port}`) : undefined);
      return proxy ? { host: '127.0.0.1', port: proxy.port } : address;
    },
    cutAll: () => [...proxies.values()].reduce((sum, p) => sum + p.cut(), 0),
    pauseAll: () => {
      for (const proxy of proxies.values()) proxy.pause();
    },
    resumeAll: () => {
      for (const proxy of proxies.values()) proxy.resume();
    },
    failJoins: (groupId, count) => void failing.set(groupId, count),
    get joinsFailed() {
      return joinsFailed;
    },
    close: async () => {
      await Promise.all([...proxies.values()].map((p) => p.close()));
    },
  };
}
