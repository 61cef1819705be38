import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const dist = (file: string) => fileURLToPath(new URL(`../dist/${file}`, import.meta.url));

export interface Started<T> {
  readonly child: ChildProcess;
  readonly message: T;
  /** Everything the process printed so far. */
  output(): string;
}

/** Forks a built entry point and waits for its first IPC message (its "ready"). */
export function start<T>(file: string, env: NodeJS.ProcessEnv): Promise<Started<T>> {
  // No inherited execArgv: the children run the built JavaScript, not the test runner's sources.
  const child = fork(dist(file), { env: { ...process.env, ...env }, stdio: 'pipe', execArgv: [] });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  return new Promise((resolve, reject) => {
    child.once('message', (message) =>
      resolve({ child, message: message as T, output: () => output }),
    );
    child.once('exit', (code) =>
      reject(new Error(`${file} exited with code ${code} before it was ready:\n${output}`)),
    );
  });
}

/** Sends SIGTERM and waits for the exit code. */
export function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}
