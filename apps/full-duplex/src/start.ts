import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createConsoleLogger } from '@tidings/core';
import { transportFromEnv, transportName } from '@tidings/sample-support';
import { createClientEndpoint, runClient } from './client.js';
import { createSalesEndpoint } from './server.js';

/**
 * `npm start`: the server and the client as two processes (one process on the in-memory
 * transport, whose queues cannot leave it), a few round trips, then a clean exit.
 */
const count = Number(process.env.ORDERS ?? 3);
const logger = createConsoleLogger('warn');

if (transportName() === 'in-memory') {
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
  process.exitCode = clientCode || serverCode;
}
