import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createConsoleLogger } from '@tidings/core';
import { runUntilSignal, transportFromEnv, transportName } from '@tidings/sample-support';
import { createBackendEndpoint } from './backend.js';
import { createWebEndpoint, createWebServer } from './web.js';

/**
 * `npm start`: the backend and the web server as two processes (one process on the in-memory
 * transport, whose queues cannot leave it). Runs until Ctrl+C.
 */
const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
const timeoutMs = Number(process.env.WEB_TIMEOUT_MS ?? 5000);

if (transportName() === 'in-memory') {
  const transport = await transportFromEnv('tidings-web-callback');
  const logger = createConsoleLogger('warn');
  const backend = createBackendEndpoint(transport, { logger });
  await backend.start();
  const app = await createWebServer({
    endpoint: createWebEndpoint(transport, { logger }),
    timeoutMs,
  });
  const url = await app.listen({ port, host });
  console.log(`[start] open ${url} (in-memory, one process); Ctrl+C stops`);
  await runUntilSignal(async () => {
    await app.close();
    await backend.stop();
  });
} else {
  const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
  const env = { ...process.env, PORT: String(port), HOST: host };
  const exited = (child: ChildProcess) =>
    new Promise<number>((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.once('exit', (code) => resolve(code ?? 1));
    });
  const started = <T>(child: ChildProcess, what: string) =>
    new Promise<T>((resolve, reject) => {
      child.once('message', (message) => resolve(message as T));
      child.once('exit', (code) =>
        reject(new Error(`The ${what} exited with code ${code} before it was ready.`)),
      );
    });
  const backend = fork(here('./backend.js'), { env, stdio: 'inherit' });
  await started(backend, 'backend');
  const web = fork(here('./web.js'), { env, stdio: 'inherit' });
  const { url } = await started<{ url: string }>(web, 'web server');
  console.log(`[start] open ${url} (${transportName()}, two processes); Ctrl+C stops`);
  await runUntilSignal(async () => {
    // The web server first: its pending requests still get their replies from the backend.
    web.kill('SIGTERM');
    const webCode = await exited(web);
    backend.kill('SIGTERM');
    const backendCode = await exited(backend);
    process.exitCode = webCode || backendCode;
  });
  console.log('[start] stopped');
}
