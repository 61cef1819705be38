import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokerUrl, deleteTopology } from './broker.ts';
import { uniquePrefix } from './helpers.ts';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/scale-out-node.mjs', import.meta.url));

interface Reply {
  kind: string;
  [key: string]: unknown;
}

/** A forked instance and the IPC messages it sent, in order. */
function spawnNode(env: Record<string, string>) {
  // No inherited exec arguments: the test runner's would resolve packages to their sources.
  const child = fork(fixture, [], {
    env: { ...process.env, ...env },
    execArgv: [],
    stdio: 'pipe',
  });
  const messages: Reply[] = [];
  const waiters: Array<() => void> = [];
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += String(chunk);
  });
  child.on('message', (message) => {
    messages.push(message as Reply);
    for (const wake of waiters.splice(0)) wake();
  });
  let gone = false;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      gone = true;
      for (const wake of waiters.splice(0)) wake();
      resolve(code);
    }),
  );
  const next = async (kind: string, timeoutMs = 60_000): Promise<Reply> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = messages.find((m) => m.kind === kind || m.kind === 'error');
      if (found) {
        if (found.kind === 'error') throw new Error(`${env.INSTANCE}: ${String(found.message)}`);
        return found;
      }
      if (gone || Date.now() > deadline)
        throw new Error(`${env.INSTANCE}: no '${kind}' (${stderr})`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  };
  return { child, next, exited, stderr: () => stderr };
}

describe('rabbitmq scale-out (separate processes)', () => {
  const prefix = uniquePrefix('scale');
  const children: ChildProcess[] = [];
  const queues = [`${prefix}-Server`, `${prefix}-Client`, `${prefix}-error`];

  beforeAll(() => {
    // The fixture runs on the built package (the nx test target builds it first).
    if (!existsSync(`${packageDir}/dist/index.js`)) {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: packageDir });
    }
  }, 120_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill();
    await deleteTopology(queues, ['scaleout.Ping', 'scaleout.Pong']);
  });

  it('two client processes and two server processes: 1,000 requests each, every reply at the instance that asked', {
    timeout: 120_000,
  }, async () => {
    const base = { PREFIX: prefix, BROKER_URL: brokerUrl, COUNT: '1000' };
    const servers = ['s1', 's2'].map((id) => spawnNode({ ...base, ROLE: 'server', INSTANCE: id }));
    const clients = ['c1', 'c2'].map((id) => spawnNode({ ...base, ROLE: 'client', INSTANCE: id }));
    const all = [...servers, ...clients];
    children.push(...all.map((node) => node.child));
    const ready = await Promise.all(all.map((node) => node.next('ready')));
    for (const r of ready) if (typeof r.instanceQueue === 'string') queues.push(r.instanceQueue);

    for (const client of clients) client.child.send('go');
    const results = await Promise.all(clients.map((client) => client.next('result', 90_000)));
    for (const result of results) {
      expect(result.replies).toBe(1000);
      expect(result.wrong).toBe(0);
    }
    // Both server processes took part (competing consumers on one queue).
    expect(new Set(results.flatMap((r) => r.servers as string[]))).toEqual(new Set(['s1', 's2']));

    for (const node of all) node.child.send('stop');
    const stopped = await Promise.all(all.map((node) => node.next('stopped')));
    const handled = stopped.slice(0, 2).reduce((sum, s) => sum + Number(s.handled), 0);
    expect(handled).toBeGreaterThanOrEqual(2000);
    expect(stopped.slice(2).every((s) => s.pending === 0)).toBe(true);
    // Each process exits by itself once its endpoint stopped: nothing left open.
    const codes = await Promise.all(
      all.map((node) =>
        Promise.race([
          node.exited,
          new Promise((resolve) => setTimeout(() => resolve('hung'), 15_000)),
        ]),
      ),
    );
    expect(codes).toEqual([0, 0, 0, 0]);
  });
});
