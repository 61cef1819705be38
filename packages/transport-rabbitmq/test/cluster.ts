import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/**
 * The three-node cluster of scripts/rabbitmq-cluster.sh: nodes t1..t3@localhost on
 * 127.0.0.1:5681-5683, beside the single broker. Tests start it, disrupt it, and stop it by name.
 */
const script = fileURLToPath(new URL('../../../scripts/rabbitmq-cluster.sh', import.meta.url));

export type ClusterNode = 1 | 2 | 3;

export const clusterUrl = (node: ClusterNode) => `amqp://guest:guest@127.0.0.1:568${node}`;

/** Why the cluster cannot run here, or undefined when it can. */
export function clusterUnavailableReason(): string | undefined {
  if (process.env.TIDINGS_RABBITMQ_CLUSTER === 'off') return 'TIDINGS_RABBITMQ_CLUSTER=off';
  if (process.getuid?.() !== 0) return 'starting RabbitMQ nodes needs root';
  try {
    execFileSync('sh', ['-c', 'command -v rabbitmq-server && command -v rabbitmqctl'], {
      stdio: 'ignore',
    });
  } catch {
    return 'rabbitmq-server is not installed (scripts/services.sh installs it)';
  }
  return undefined;
}

// Asynchronous: the endpoints under test keep running while a node stops or starts.
const run = async (args: string[], timeout: number): Promise<string> =>
  (await promisify(execFile)('bash', [script, ...args], { timeout })).stdout;

export const startCluster = () => run(['start'], 180_000);
export const stopCluster = () => run(['stop'], 120_000);
/** rabbitmqctl against one node: `stop_app`, `start_app`, `await_startup`, ... */
export const clusterCtl = (node: ClusterNode, ...args: string[]) =>
  run(['ctl', String(node), ...args], 90_000);
/** Kills the node's Erlang VM at once: a crash, not a shutdown. */
export const killClusterNode = (node: ClusterNode) => run(['kill', String(node)], 30_000);
