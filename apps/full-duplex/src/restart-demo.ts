import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * What survives a crash: the client sends two orders (replies for its reply handler) and starts
 * two `await request` calls, and is killed while all four wait on a slow Sales. Started again
 * with the same instance id, it handles the replies that waited in its queues; the two callers
 * that awaited them died with the first process.
 */
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const env = { ...process.env, ORDERS: '2', REPLY_DELAY_MS: process.env.REPLY_DELAY_MS ?? '800' };
const exited = (child: ChildProcess) =>
  new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
const message = (child: ChildProcess, text: string) =>
  new Promise<void>((resolve) => {
    const onMessage = (received: unknown) => {
      if (received !== text) return;
      child.off('message', onMessage);
      resolve();
    };
    child.on('message', onMessage);
  });

const server = fork(here('./server.js'), { env, stdio: 'inherit' });
await message(server, 'ready');
let replies = 0;
server.on('message', (received) => {
  if (received === 'replied') replies++;
});

const first = fork(here('./client.js'), {
  env: { ...env, CLIENT_MODE: 'send-and-die' },
  stdio: 'inherit',
});
await message(first, 'pending');
first.kill('SIGKILL');
await exited(first);
console.log('[demo] killed the client with 2 sends and 2 callbacks awaiting replies');

while (replies < 4) await new Promise((resolve) => setTimeout(resolve, 20));
console.log('[demo] Sales replied to all 4; starting the client again (same instance id)');

const second = fork(here('./client.js'), {
  env: { ...env, CLIENT_MODE: 'listen', EXPECT_REPLIES: '4' },
  stdio: 'inherit',
});
const code = await exited(second);
server.kill('SIGTERM');
await exited(server);
console.log(
  '[demo] the replies survived in the queues and reached the reply handler; the 2 callbacks waiting for them did not: they lived in the memory of the killed process',
);
process.exitCode = code;
