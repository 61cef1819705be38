import { fileURLToPath } from 'node:url';
import { reachable } from '../reachable.js';
import {
  type BenchRow,
  type BenchSuite,
  type Contestant,
  interleavedBlocks,
  rowFor,
} from '../report.js';
import { type SideProcess, startSideProcess } from '../side-process.js';
import type { QueueType, RabbitBlockCommand, RabbitSide } from './rabbitmq-contestant.js';

/**
 * RabbitMQ: every side (Tidings and two raw amqplib baselines, on each queue type) has its client
 * in a process of its own and its server in another (`rabbitmq-contestant.ts`,
 * `rabbitmq-server.ts`); all stay open and run block by block in turn (`interleavedBlocks`), so a
 * shared machine's changing speed moves every side alike.
 *
 * Baselines: `raw amqplib, hand-written RPC` is request/reply as users write it (transient request,
 * exclusive reply queue without acks, no confirms): the figure Tidings is held to.
 * `raw amqplib, same guarantees` carries Tidings' durable guarantees (persistent confirmed request
 * and reply, the request acked once the reply is confirmed, acked replies): a fair measure of
 * Tidings' own code, whose defaults are lighter: replies to callbacks are express, their requests
 * confirmed but transient (ADR 13).
 * One-way is persistent and confirmed on both sides, with acks.
 */
const url = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const transportName = 'rabbitmq';
const row = rowFor(transportName);
const contestantScript = fileURLToPath(new URL('./rabbitmq-contestant.js', import.meta.url));

const impl: Record<RabbitSide, string> = {
  'raw-rpc': 'raw amqplib, hand-written RPC',
  raw: 'raw amqplib, same guarantees',
  tidings: 'tidings',
  'tidings-express': 'tidings, express request',
};
/** Blocks per side and their sizes: a block takes 0.05–0.3 s here. */
const oneWay = { blocks: 20, blockSize: 500, concurrency: 100 } as const;
const requestsAtOne = { blocks: 40, blockSize: 50, concurrency: 1 } as const;
const requestsAtHundred = { blocks: 20, blockSize: 500, concurrency: 100 } as const;

type Side = SideProcess<Omit<RabbitBlockCommand, 'kind'>> & { readonly side: RabbitSide };

async function startSide(side: RabbitSide, queueType: QueueType): Promise<Side> {
  const started = await startSideProcess<Omit<RabbitBlockCommand, 'kind'>>(
    contestantScript,
    [side, queueType, url],
    impl[side],
    {},
  );
  return Object.assign(started, { side });
}

const contestant = (
  side: Side,
  scenario: RabbitBlockCommand['scenario'],
  concurrency: number,
): Contestant => ({
  impl: side.impl,
  runBlock: (first, count) => side.run({ scenario, first, count, concurrency }),
});

export const rabbitMqSuite: BenchSuite = {
  name: transportName,
  async unavailable() {
    return (await reachable(url, 5672))
      ? undefined
      : `no RabbitMQ broker at ${new URL(url).host} (set RABBITMQ_URL)`;
  },
  async run() {
    const rows: BenchRow[] = [];
    for (const queueType of ['classic', 'quorum'] as const) {
      const sides: Side[] = [];
      try {
        for (const side of ['raw-rpc', 'raw', 'tidings', 'tidings-express'] as const) {
          sides.push(await startSide(side, queueType));
        }
        const options = { whose: 'client+server' };
        const durable = sides.filter((side) => side.side === 'raw' || side.side === 'tidings');
        rows.push(
          ...(await interleavedBlocks(
            row,
            durable.map((side) => contestant(side, 'one-way', oneWay.concurrency)),
            { ...options, ...oneWay, scenario: `one-way (${queueType})` },
          )),
        );
        for (const plan of [requestsAtOne, requestsAtHundred]) {
          rows.push(
            ...(await interleavedBlocks(
              row,
              sides.map((side) => contestant(side, 'request', plan.concurrency)),
              {
                ...options,
                ...plan,
                scenario: `request/reply c=${plan.concurrency} (${queueType})`,
              },
            )),
          );
        }
      } finally {
        for (const side of sides) await side.close().catch(() => {});
      }
    }
    return rows;
  },
};
