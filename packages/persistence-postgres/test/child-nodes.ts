import { type ChildProcess, fork } from 'node:child_process';

/** A child process of a fault test, and what it reports. */
export interface Node {
  readonly ready: Promise<void>;
  readonly done: Promise<Record<string, unknown>>;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly child: ChildProcess;
  /** Asks it to stop; resolves with what it reports when stopped (nothing if it died first). */
  stop(): Promise<Record<string, unknown>>;
}

/** Children of a test file, killed at its end. */
export function childNodes(fixture: string, baseEnv: Record<string, string>) {
  const children = new Set<ChildProcess>();
  function start(env: Record<string, string>): Node {
    const child = fork(fixture, [], {
      env: { ...process.env, ...baseEnv, ...env },
      // No inherited exec arguments: the test runner's would resolve packages to their sources.
      execArgv: [],
      stdio: 'pipe',
    });
    children.add(child);
    let stderr = '';
    child.stderr?.on('data', (chunk) => {
      stderr += String(chunk);
    });
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      }),
    );
    const waitFor = (kind: string) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        child.on('message', (message: { kind: string; message?: string }) => {
          if (message.kind === kind) resolve(message);
          if (message.kind === 'error') reject(new Error(message.message));
        });
        void exit.then(({ signal }) => {
          if (signal !== 'SIGKILL') reject(new Error(`child exited before '${kind}': ${stderr}`));
        });
      });
    const ready = waitFor('ready').then(() => {});
    const done = waitFor('done');
    const stopped = waitFor('stopped');
    for (const promise of [ready, done, stopped]) promise.catch(() => {});
    return {
      child,
      ready,
      done,
      exit,
      stop() {
        // Killed at its kill point meanwhile: nothing to stop, nothing reported.
        if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({});
        child.send('stop');
        return Promise.race([stopped, exit.then(() => ({}))]);
      },
    };
  }
  return {
    start,
    killAll() {
      for (const child of children) child.kill('SIGKILL');
    },
  };
}

/**
 * Keeps a child running until `finished` holds, restarting it (after `restartAfterMs`) each time
 * it killed itself; returns the kills and the last node, still running.
 */
export async function superviseUntil(
  first: Node,
  restart: () => Node,
  finished: () => Promise<boolean>,
  options: { deadlineMs?: number; restartAfterMs?: number } = {},
): Promise<{ kills: number; node: Node }> {
  let kills = 0;
  let node = first;
  const deadline = Date.now() + (options.deadlineMs ?? 100_000);
  for (;;) {
    const exited = await Promise.race([
      node.exit,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 100)),
    ]);
    if (exited !== undefined) {
      if (exited.signal !== 'SIGKILL') throw new Error(`child exited: ${JSON.stringify(exited)}`);
      kills++;
      if (options.restartAfterMs !== undefined) {
        await new Promise((resolve) => setTimeout(resolve, options.restartAfterMs));
      }
      // Not waiting for its 'ready': it may die at its kill point before that message leaves.
      node = restart();
      continue;
    }
    if (await finished()) break;
    if (Date.now() > deadline) throw new Error('the fault run did not finish in time');
  }
  return { kills, node };
}
