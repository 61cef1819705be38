import { Transform } from 'node:stream';
import { type ProxyInterceptor, startTcpProxy, type TcpProxy } from '@tidings/transport-tests';

const OFFSET_COMMIT = 8;
const JOIN_GROUP = 11;
/** What a coordinator answers a commit with while its group rebalances. */
const REBALANCE_IN_PROGRESS = 27;
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

/** What the proxies change in the brokers' answers. */
interface Faults {
  /** Group id → how many more of its joins are refused. */
  readonly failingJoins: Map<string, number>;
  /** While true, every offset commit is refused. */
  failCommits: boolean;
  joinsFailed: number;
  commitsFailed: number;
}

/** Sets the error code of every partition in an OffsetCommit response (v0–v7). */
function refuseCommit(frame: Buffer, version: number, errorCode: number): void {
  // Size, correlation id, then from v3 on throttle_time_ms.
  let at = version >= 3 ? 12 : 8;
  const topics = frame.readInt32BE(at);
  at += 4;
  for (let t = 0; t < topics; t++) {
    at += 2 + frame.readInt16BE(at);
    const partitions = frame.readInt32BE(at);
    at += 4;
    for (let p = 0; p < partitions; p++) {
      frame.writeInt16BE(errorCode, at + 4);
      at += 6;
    }
  }
}

/**
 * Answers the JoinGroup requests of the groups in `failingJoins` with GROUP_AUTHORIZATION_FAILED,
 * as a cluster whose ACLs refuse the group would, and, while `failCommits`, every OffsetCommit
 * with REBALANCE_IN_PROGRESS, as a coordinator does while the group rebalances (the commit itself
 * goes to another group: the group's positions do not move). kafkajs sends
 * JoinGroup v0–v5 and OffsetCommit v0–v5: request header v1, response header v0.
 */
function faultsOf(faults: Faults): ProxyInterceptor {
  const toFail = new Map<number, { apiKey: number; version: number }>();
  return {
    toUpstream: frames((frame) => {
      const apiKey = frame.readInt16BE(4);
      const version = frame.readInt16BE(6);
      const correlationId = frame.readInt32BE(8);
      if (apiKey !== OFFSET_COMMIT && apiKey !== JOIN_GROUP) return;
      // Both requests start with the group id, after the client id.
      const clientIdLength = Math.max(0, frame.readInt16BE(12));
      const groupAt = 14 + clientIdLength;
      const groupLength = frame.readInt16BE(groupAt);
      if (apiKey === OFFSET_COMMIT) {
        if (!faults.failCommits || groupLength < 1) return;
        // Into another group, so that the group's positions stay as they were.
        const last = groupAt + 1 + groupLength;
        frame.writeUInt8(frame.readUInt8(last) === 0x7e ? 0x7d : 0x7e, last);
        toFail.set(correlationId, { apiKey, version });
        return;
      }
      const group = frame.toString('utf8', groupAt + 2, groupAt + 2 + groupLength);
      const left = faults.failingJoins.get(group) ?? 0;
      if (left === 0) return;
      faults.failingJoins.set(group, left - 1);
      toFail.set(correlationId, { apiKey, version });
    }),
    toClient: frames((frame) => {
      const correlationId = frame.readInt32BE(4);
      const request = toFail.get(correlationId);
      if (request === undefined) return;
      toFail.delete(correlationId);
      if (request.apiKey === OFFSET_COMMIT) {
        refuseCommit(frame, request.version, REBALANCE_IN_PROGRESS);
        faults.commitsFailed++;
        return;
      }
      // From v2 on the response starts with throttle_time_ms, then error_code.
      frame.writeInt16BE(GROUP_AUTHORIZATION_FAILED, request.version >= 2 ? 12 : 8);
      faults.joinsFailed++;
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
  /** While on, every offset commit is refused (REBALANCE_IN_PROGRESS). */
  failCommits(on: boolean): void;
  /** Commits refused so far. */
  readonly commitsFailed: number;
  close(): Promise<void>;
}> {
  const proxies = new Map<string, TcpProxy>();
  const faults: Faults = {
    failingJoins: new Map(),
    failCommits: false,
    joinsFailed: 0,
    commitsFailed: 0,
  };
  for (const broker of brokers) {
    const [host, port] = broker.split(':') as [string, string];
    proxies.set(broker, await startTcpProxy({ host, port: Number(port) }, () => faultsOf(faults)));
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
    failJoins: (groupId, count) => void faults.failingJoins.set(groupId, count),
    get joinsFailed() {
      return faults.joinsFailed;
    },
    failCommits: (on) => {
      faults.failCommits = on;
    },
    get commitsFailed() {
      return faults.commitsFailed;
    },
    close: async () => {
      await Promise.all([...proxies.values()].map((p) => p.close()));
    },
  };
}
