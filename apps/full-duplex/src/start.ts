import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createConsoleLogger } from '@tidings/core';
import {
  traceTree,
  tracingFromEnv,
  transportFromEnv,
  transportName,
} from '@tidings/sample-support';
import { createClientEndpoint, runClient } from './client.js';
import { createSalesEndpoint } from './server.js';

/**
 * `npm start`: the server and the client as two processes (one process on the in-memory
 * transport, whose queues cannot leave it), a few round trips, then a clean exit.
 */
const count = Number(process.env.ORDERS ?? 3);
const logger = createConsoleLogger('warn');
// TIDINGS_TRACE=1: every process writes its spans here; the tree is printed at the end.
const tracing = process.env.TIDINGS_TRACE !== undefined && process.env.TIDINGS_TRACE !== '0';
if (tracing) process.env.TIDINGS_TRACE_DIR = mkdtempSync(join(tmpdir(), 'tidings-trace-'));
const printTrace = () => {
  const dir = process.env.TIDINGS_TRACE_DIR;
  if (!tracing || dir === undefined) return;
  console.log(`\n[start] the traces (TIDINGS_TRACE):\n${traceTree(dir)}`);
  rmSync(dir, { recursive: true, force: true });
};

if (transportName() === 'in-memory') {
  tracingFromEnv('one-process');
  const transport = await transportFromEnv('tidings-full-duplex');
  const durable = new Set<string>();
  const sales = createSalesEndpoint(transport, logger);
  const client = createClientEndpoint(transport, (id) => durable.add(id), logger);
  await sales.start();
  await client.start();
  await runClient(client, count, durable);
  await client.stop();
  await sales.stop();
  console.log('[start] done (in-memory, one process)');
  printTrace();
} else {
  const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
  const env = { ...process.env, ORDERS: String(count) };
  const exited = (child: ChildProcess) =>
    new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  const server = fork(here('./server.js'), { env, stdio: 'inherit' });
  await new Promise<void>((resolve, reject) => {
    server.once('message', () => resolve());
    server.once('exit', (code) =>
      reject(new Error(`The server exited with code ${code} before it was ready.`)),
    );
  });
  const client = fork(here('./client.js'), { env, stdio: 'inherit' });
  const clientCode = await exited(client);
  server.kill('SIGTERM');
  const serverCode = await exited(server);
  console.log(`[start] done (${transportName()}, two processes)`);
  printTrace();
  process.exitCode = clientCode || serverCode;
}
