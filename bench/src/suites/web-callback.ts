import { type ChildProcess, spawn } from 'node:child_process';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as amqp from 'amqplib';
import autocannon from 'autocannon';
import { reachable } from '../reachable.js';
import type { BenchRow, BenchSuite } from '../report.js';

/**
 * HTTP load against the web-callback sample (apps/web-callback, built): each `POST /api/process`
 * sends a command over the bus and answers when the reply arrives; `GET /ping` answers without
 * the bus and is the baseline. The sample runs in its own processes, autocannon in this one.
 */
const sample = fileURLToPath(new URL('../../../apps/web-callback/dist/start.js', import.meta.url));
const rabbitMqUrl = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const durationSeconds = Number(process.env.WEB_BENCH_SECONDS ?? 5);
const connectionCounts = [1, 100];

interface Sample {
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts the sample's launcher (`npm start`) on `transport` and waits for its URL. */
async function startSample(transport: string): Promise<Sample> {
  const cwd = await mkdtemp(join(tmpdir(), 'tidings-bench-web-'));
  const child: ChildProcess = spawn(process.execPath, [sample], {
    cwd,
    env: {
      ...process.env,
      TIDINGS_TRANSPORT: transport,
      RABBITMQ_URL: rabbitMqUrl,
      PORT: '0',
      WEB_TIMEOUT_MS: '30000',
    },
    // Its output is shown only if it fails: at the end of each run autocannon drops its open
    // connections, and the replies to those aborted requests are discarded with a warning each.
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (chunk) => {
      output += chunk;
      const match = /\[start\] open (\S+)/.exec(output);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`the sample exited (${code}):\n${output}`)));
  });
  return {
    url,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      await rm(cwd, { recursive: true, force: true });
    },
  };
}

async function load(
  url: string,
  connections: number,
  seconds: number,
  bus: boolean,
): Promise<autocannon.Result> {
  return autocannon({
    url: `${url}${bus ? '/api/process' : '/ping'}`,
    connections,
    duration: seconds,
    ...(bus
      ? {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id: 1 }),
        }
      : { method: 'GET' }),
  } as autocannon.Options);
}

function row(
  transport: string,
  connections: number,
  impl: string,
  result: autocannon.Result,
): BenchRow {
  const failed = result.non2xx + result.errors + result.timeouts;
  return {
    transport,
    scenario: `${transport} HTTP c=${connections}`,
    impl,
    messages: result.requests.total,
    perSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    // autocannon's latencies have a resolution of 1 ms.
    note: `${result.duration.toFixed(1)} s${failed > 0 ? `, ${failed} failed` : ''}`,
  };
}

async function measure(transport: string): Promise<BenchRow[]> {
  const running = await startSample(transport);
  try {
    // Warm up both routes (JIT, connections, the instance queue) before measuring.
    await load(running.url, 10, 1, true);
    await load(running.url, 10, 1, false);
    const rows: BenchRow[] = [];
    for (const connections of connectionCounts) {
      rows.push(
        row(
          transport,
          connections,
          'no bus (GET /ping)',
          await load(running.url, connections, durationSeconds, false),
        ),
      );
      rows.push(
        row(
          transport,
          connections,
          'tidings',
          await load(running.url, connections, durationSeconds, true),
        ),
      );
    }
    return rows;
  } finally {
    await running.stop();
  }
}

/**
 * The sample's queues on the broker: emptied before a run (leftovers would be handled and
 * discarded during it) and deleted after (an aborted request's late reply stays in them).
 */
async function deleteSampleQueues(): Promise<void> {
  const connection = await amqp.connect(rabbitMqUrl, { noDelay: true });
  try {
    const channel = await connection.createChannel();
    for (const queue of [
      'Callbacks.Backend',
      'Callbacks.Backend.backend-1',
      'Callbacks.Web',
      'Callbacks.Web.web-1',
    ]) {
      await channel.deleteQueue(queue);
    }
  } finally {
    await connection.close();
  }
}

/**
 * The web-callback sample under HTTP load: requests/s and latency at 1 and 100 connections, the
 * bus route beside a route that answers without the bus; in-memory (one process), and RabbitMQ
 * (backend and web server as two processes) when a broker is reachable.
 */
export const webCallbackSuite: BenchSuite = {
  name: 'web-callback',
  async unavailable() {
    return access(sample).then(
      () => undefined,
      () => 'the web-callback sample is not built (npm run build)',
    );
  },
  async run() {
    const rows = await measure('in-memory');
    if (await reachable(rabbitMqUrl, 5672)) {
      await deleteSampleQueues();
      try {
        rows.push(...(await measure('rabbitmq')));
      } finally {
        await deleteSampleQueues();
      }
    } else console.log(`(rabbitmq rows skipped: no broker at ${new URL(rabbitMqUrl).host})`);
    return rows;
  },
};
