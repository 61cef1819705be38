import { type ChildProcess, fork } from 'node:child_process';
import type { BlockResult } from './report.js';

/** One benchmark side in a process of its own, set up and ready for blocks. */
export interface SideProcess<C> {
  readonly impl: string;
  run(command: C): Promise<BlockResult>;
  close(): Promise<void>;
}

/**
 * Forks `script` with `args`, sends it `setup` and waits for its answer. The side answers one
 * command at a time (`{ kind: 'error', message }` for a failure); `run` sends `{ kind: 'block',
 * ...command }`; disconnecting ends it. A side whose setup fails is killed, since its open IPC
 * channel would keep the benchmark running.
 */
export async function startSideProcess<C extends object>(
  script: string,
  args: readonly string[],
  impl: string,
  setup: object,
): Promise<SideProcess<C>> {
  const child: ChildProcess = fork(script, [...args], {
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  /** Rejects the command waiting for an answer, if any. */
  let failWaiting: ((error: Error) => void) | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      failWaiting?.(new Error(`the benchmark side '${impl}' has exited`));
      resolve();
    }),
  );
  child.on('error', () => {});
  const ask = <T>(command: object): Promise<T> =>
    new Promise((resolve, reject) => {
      failWaiting = reject;
      child.once('message', (answer: { kind: string; message?: string }) => {
        failWaiting = undefined;
        if (answer.kind === 'error') reject(new Error(`side '${impl}': ${answer.message}`));
        else resolve(answer as T);
      });
      child.send(command);
    });
  try {
    await ask({ kind: 'setup', ...setup });
  } catch (error) {
    child.kill();
    throw error;
  }
  return {
    impl,
    run: (command) => ask<BlockResult>({ kind: 'block', ...command }),
    close: async () => {
      if (child.connected) child.disconnect();
      await exited;
    },
  };
}
