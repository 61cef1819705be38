import { type ChildProcess, spawn } from 'node:child_process';

/** librdkafka's mock cluster, run by kcat for as long as the process lives or until `stop`. */
export interface KafkaMockCluster {
  /** `host:port` of each mock broker. */
  readonly brokers: string[];
  stop(): Promise<void>;
}

/**
 * Starts librdkafka's mock cluster through Debian's `kcat` (3 brokers) and resolves once it
 * prints its bootstrap servers. The cluster is killed when this process exits, however it ends.
 */
export async function startKafkaMockCluster(): Promise<KafkaMockCluster> {
  const child: ChildProcess = spawn(
    'kcat',
    ['-X', 'test.mock.num.brokers=3', '-C', '-t', '_tidings', '-b', 'unused:9092'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // Also when the run ends without stop() (a crash, Ctrl-C).
  process.once('exit', () => child.kill('SIGKILL'));
  const brokers = await new Promise<string>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(
      () =>
        reject(new Error(`kcat printed no bootstrap servers within 10 s: ${seen.slice(0, 500)}`)),
      10_000,
    );
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(
        new Error(`Could not start kcat (install it: apt-get install kcat): ${error.message}`),
      );
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(
        new Error(`kcat exited (${code}) before the mock cluster was up: ${seen.slice(0, 500)}`),
      );
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      if (seen.length < 10_000) seen += chunk.toString();
      // With `-d mock` librdkafka prints `bootstrap.servers=...`; without it, `replaced with ...`.
      const match = /(?:bootstrap\.servers=|replaced with )(\S+:\d+(?:,\S+:\d+)*)/.exec(seen);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
  });
  // Keep draining stderr so the mock never blocks on a full pipe.
  child.stderr?.resume();
  return {
    brokers: brokers.split(','),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          resolve();
          return;
        }
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, 3_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
