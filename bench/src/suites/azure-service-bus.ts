import { fork } from 'node:child_process';
import { Agent } from 'node:https';
import { fileURLToPath } from 'node:url';
import type { AdministrationOptions } from '@tidings/transport-azure-service-bus';
import { type BenchSuite, type Contestant, interleavedBlocks, rowFor } from '../report.js';
import { type SideProcess, startSideProcess } from '../side-process.js';
import { type BlockCommand, type RawMetadata, rawImpl } from './azure-service-bus-contestant.js';

/**
 * Azure Service Bus through the test peer (an AMQP 1.0 peer on rhea) in a process of its own, as
 * a broker runs apart from its clients. The peer is not Service Bus: no network hop to Azure, no
 * replication, no throttling. Its figures compare Tidings with the raw @azure/service-bus SDK
 * doing the same work in the same run; they are no reference for a real namespace. Each side runs
 * in a process of its own (`azure-service-bus-contestant.ts`); both create their queues through
 * the peer's management endpoint and run with TCP_NODELAY (see enableTcpNoDelay).
 */
const transportName = 'azure-service-bus (test peer, not Service Bus)';
/** Blocks per side and their sizes (`interleavedBlocks`): a block takes 0.05–0.3 s here. */
const oneWay = { blocks: 20, blockSize: 500 } as const;
const requestsAtOne = { blocks: 80, blockSize: 25 } as const;
const requestsAtHundred = { blocks: 20, blockSize: 500 } as const;
const concurrency = 100;

const row = rowFor(transportName);
interface Peer {
  readonly connectionString: string;
  /** The peer's self-signed certificate (PEM), for a side in another process. */
  readonly certificate: string;
  /** Trusts the peer's self-signed certificate for its management endpoint. */
  readonly administration: AdministrationOptions;
  /** The peer process's CPU time so far (µs). */
  cpuMicros(): Promise<number>;
  close(): Promise<void>;
}

const peerScript = fileURLToPath(new URL('./servicebus-peer-process.js', import.meta.url));

/** How long the peer process may take to listen. */
const PEER_START_TIMEOUT_MS = 30_000;

async function startPeerProcess(): Promise<Peer> {
  const child = fork(peerScript, [], {
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const gone = () => new Error('the Service Bus peer process has exited');
  // A send on a channel already closed reports here; the request it belonged to fails on exit.
  child.on('error', () => {});
  const listening = new Promise<{ connectionString: string; certificate: string }>(
    (resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill();
        reject(new Error(`the Service Bus peer did not listen within ${PEER_START_TIMEOUT_MS} ms`));
      }, PEER_START_TIMEOUT_MS);
      child.once('message', (message) => {
        clearTimeout(timer);
        resolve(message as never);
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(gone());
      });
    },
  );
  const { connectionString, certificate } = await listening;
  return {
    connectionString,
    certificate,
    administration: { agent: new Agent({ ca: certificate, keepAlive: true }) },
    cpuMicros: () =>
      new Promise((resolve, reject) => {
        if (!child.connected) {
          reject(gone());
          return;
        }
        child.once('message', (message) => resolve((message as { cpuMicros: number }).cpuMicros));
        void exited.then(() => reject(gone()));
        child.send('cpu');
      }),
    close: async () => {
      if (child.connected) child.disconnect();
      await exited;
    },
  };
}

const contestantScript = fileURLToPath(
  new URL('./azure-service-bus-contestant.js', import.meta.url),
);

type Side = SideProcess<Omit<BlockCommand, 'kind'>>;

const startSide = (side: RawMetadata | 'tidings', peer: Peer): Promise<Side> =>
  startSideProcess(contestantScript, [side], side === 'tidings' ? 'tidings' : rawImpl[side], {
    connectionString: peer.connectionString,
    certificate: peer.certificate,
  });

const contestant = (side: Side, scenario: BlockCommand['scenario'], c: number): Contestant => ({
  impl: side.impl,
  runBlock: (first, count) => side.run({ scenario, first, count, concurrency: c }),
});

export const azureServiceBusSuite: BenchSuite = {
  name: 'azure-service-bus',
  async run() {
    const peer = await startPeerProcess();
    const sides: Side[] = [];
    try {
      // Every side open at once: an idle SDK receiver costs nothing (no polling).
      for (const side of ['none', 'bus', 'six'] as const) sides.push(await startSide(side, peer));
      sides.push(await startSide('tidings', peer));
      const options = {
        whose: 'client+server',
        other: { name: 'peer', cpuMicros: () => peer.cpuMicros() },
      };
      return [
        ...(await interleavedBlocks(
          row,
          sides.map((side) => contestant(side, 'one-way', concurrency)),
          { ...options, ...oneWay, scenario: 'one-way' },
        )),
        ...(await interleavedBlocks(
          row,
          sides.map((side) => contestant(side, 'request', 1)),
          { ...options, ...requestsAtOne, scenario: 'request/reply c=1' },
        )),
        ...(await interleavedBlocks(
          row,
          sides.map((side) => contestant(side, 'request', concurrency)),
          { ...options, ...requestsAtHundred, scenario: `request/reply c=${concurrency}` },
        )),
      ];
    } finally {
      for (const side of sides) await side.close().catch(() => {});
      await peer.close();
    }
  },
};
