import { type ChildProcess, spawn } from 'node:child_process';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
  }
}

let mock: ChildProcess | undefined;

/** Starts librdkafka's mock cluster (through kcat) unless KAFKA_BROKERS points at a real cluster. */
export async function setup(project: TestProject): Promise<void> {
  const external = process.env.KAFKA_BROKERS;
  if (external) {
    project.provide('kafkaBrokers', external);
    return;
  }
  const child = spawn(
    'kcat',
    ['-X', 'test.mock.num.brokers=3', '-C', '-t', '_tidings', '-b', 'unused:9092'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  mock = child;
  // Also when the run ends without teardown (a crash, Ctrl-C).
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
  project.provide('kafkaBrokers', brokers);
}

export async function teardown(): Promise<void> {
  const child = mock;
  mock = undefined;
  if (child === undefined || child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, 3_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
