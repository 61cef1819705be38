import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const start = fileURLToPath(new URL('../dist/start.js', import.meta.url));

async function launch(env: Record<string, string>) {
  const cwd = await mkdtemp(join(tmpdir(), 'tidings-full-duplex-'));
  try {
    const { stdout } = await run(process.execPath, [start], {
      cwd,
      env: { ...process.env, ORDERS: '3', ...env },
      timeout: 60_000,
    });
    return stdout;
  } finally {
    await rm(cwd, { recursive: true, force: true });
  }
}

function expectRoundTrips(stdout: string) {
  for (const i of [1, 2, 3]) {
    expect(stdout).toContain(`[server] PlaceOrder order-${i} (${i * 10})`);
    expect(stdout).toContain(`[client] reply handler: order order-${i} accepted, total ${i * 12}`);
    expect(stdout).toContain(`[client] await request: order quote-${i} accepted, total ${i * 6}`);
  }
  // The reply handler sees the awaited replies too, and all of it prints before the summary.
  const [beforeDone, afterDone] = stdout.split('[client] done:');
  for (const i of [1, 2, 3]) {
    expect(beforeDone).toContain(`[client] reply handler: order quote-${i} accepted`);
  }
  expect(afterDone).toContain('3 sent orders answered through the reply handler');
  expect(afterDone).not.toContain('[client] reply handler');
}

describe('the full-duplex sample', () => {
  it('runs server and client as two processes on the learning transport and exits 0', async () => {
    const stdout = await launch({ TIDINGS_TRANSPORT: 'learning' });
    expectRoundTrips(stdout);
    expect(stdout).toContain('[start] done (learning, two processes)');
  });

  it('runs in one process on the in-memory transport', async () => {
    const stdout = await launch({ TIDINGS_TRANSPORT: 'in-memory' });
    expectRoundTrips(stdout);
  });

  it('prints one trace tree per exchange with TIDINGS_TRACE=1, across both processes', async () => {
    const stdout = await launch({ TIDINGS_TRANSPORT: 'learning', TIDINGS_TRACE: '1' });
    expectRoundTrips(stdout);
    const trees = stdout.split('[start] the traces (TIDINGS_TRACE):')[1] ?? '';
    // Three requests: the request span, its send, Sales' handling, the reply and its handling.
    const request = [
      /└─ request Sales CLIENT {2}\[client\]/,
      /└─ send Sales PRODUCER {2}\[client\]/,
      /└─ process Sales CONSUMER {2}\[server\]/,
      /└─ send Web\.web-1 PRODUCER {2}\[server\]/,
      /└─ process Web\.web-1 CONSUMER {2}\[client\]/,
    ];
    const traces = trees.split('trace ').slice(1);
    expect(traces).toHaveLength(6);
    const requests = traces.filter((t) => t.includes('request Sales'));
    expect(requests).toHaveLength(3);
    for (const tree of requests) for (const line of request) expect(tree).toMatch(line);
    // Three sends: the reply goes to the endpoint's queue and its handler, in the sender's trace.
    const sends = traces.filter((t) => !t.includes('request Sales'));
    for (const tree of sends) expect(tree).toMatch(/process Web CONSUMER {2}\[client\]/);
  });

  it('names the missing setting when a broker transport is chosen without it', async () => {
    const failure = await launch({ TIDINGS_TRANSPORT: 'rabbitmq', RABBITMQ_URL: '' }).catch(
      (error: { stderr: string }) => error,
    );
    expect(String((failure as { stderr: string }).stderr)).toMatch(/needs RABBITMQ_URL/);
  });
});

describe('the restart demo', () => {
  it('durable replies survive a killed client and reach its reply handler after restart', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'tidings-restart-'));
    try {
      const { stdout } = await run(
        process.execPath,
        [fileURLToPath(new URL('../dist/restart-demo.js', import.meta.url))],
        {
          cwd,
          env: { ...process.env, TIDINGS_TRANSPORT: 'learning', REPLY_DELAY_MS: '300' },
          timeout: 60_000,
        },
      );
      const [before, after] = stdout.split('starting the client again');
      expect(before).toContain('[demo] killed the client');
      expect(before).not.toContain('[client] callback: quote-1 answered');
      for (const id of ['order-1', 'order-2', 'quote-1', 'quote-2']) {
        expect(after).toContain(`[client] reply handler: order ${id} accepted`);
      }
      expect(after).toContain('[client] after restart: 4 replies handled by the reply handler');
      expect(stdout).not.toContain('[client] callback:');
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
});

describe('the durable request demo', () => {
  it("a killed client's durable requests still run their continuation once each after restart", async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'tidings-durable-'));
    try {
      const { stdout } = await run(
        process.execPath,
        [fileURLToPath(new URL('../dist/durable-demo.js', import.meta.url))],
        {
          cwd,
          env: {
            ...process.env,
            TIDINGS_TRANSPORT: 'learning',
            // Long enough that the first client is surely killed before a reply can reach it.
            REPLY_DELAY_MS: '1500',
            DURABLE_SAMPLE_SCHEMA: `durable_sample_${process.pid}`,
            DURABLE_SAMPLE_DROP: '1',
          },
          timeout: 60_000,
        },
      );
      const [before, after] = stdout.split('starting the client again');
      expect(before).toContain('[demo] killed the client while it awaited 2 durable requests');
      expect(before).not.toContain('[client] continuation:');
      expect(before).not.toContain('[client] await:');
      expect(after).toContain('[client] continuation: order durable-1 of ada accepted, total 12');
      expect(after).toContain('[client] continuation: order durable-2 of grace accepted, total 24');
      expect(after).toContain('[client] ledger: durable-1 recorded by 1 continuation run(s)');
      expect(after).toContain('[client] ledger: durable-2 recorded by 1 continuation run(s)');
      expect(after).toContain('[demo] 2 of 2 orders recorded exactly once');
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
