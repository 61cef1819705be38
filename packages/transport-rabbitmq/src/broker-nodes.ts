import { ConfigurationError } from '@tidings/core';
import { redactUrl } from '@tidings/core/transport';
import type { RabbitMqNodeOrder } from './options.js';

/** One node to connect to. */
export interface BrokerNode {
  /** The URL amqplib connects to (heartbeat added); holds the password: never log it. */
  readonly connectUrl: string;
  /** For logs and errors. */
  readonly redactedUrl: string;
}

/** Parses every URL, adds the heartbeat unless a URL sets one, and collects the secrets. */
export function brokerNodes(
  urls: readonly string[],
  heartbeatSeconds: number,
  passphrase: string | undefined,
): { nodes: BrokerNode[]; secrets: Array<string | undefined> } {
  const nodes: BrokerNode[] = [];
  const secrets: Array<string | undefined> = [passphrase];
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigurationError(
        `RabbitMQ: url is not a valid URL (${redactUrl(url)}); expected amqp://user:pass@host:5672/vhost.`,
      );
    }
    if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') {
      throw new ConfigurationError(
        `RabbitMQ: url must start with amqp:// or amqps://, got ${redactUrl(url)}.`,
      );
    }
    if (!parsed.searchParams.has('heartbeat')) {
      parsed.searchParams.set('heartbeat', String(heartbeatSeconds));
    }
    const password = parsed.password;
    if (password !== '') secrets.push(password, decodeURIComponent(password));
    nodes.push({ connectUrl: parsed.toString(), redactedUrl: redactUrl(url) });
  }
  return { nodes, secrets };
}

/** The nodes as one endpoint sees them, and which one it is connected to. */
export class NodeCursor {
  private readonly nodes: readonly BrokerNode[];
  /** The node of the current (or last) connection. */
  private current = 0;
  /** Whether the next connect starts after `current` (it was lost) or with it. */
  private moveOn = false;

  constructor(nodes: readonly BrokerNode[], order: RabbitMqNodeOrder) {
    this.nodes = order === 'shuffled' ? shuffle(nodes) : nodes;
  }

  /** All the nodes, for errors and logs: redacted. */
  get description(): string {
    const [only] = this.nodes;
    if (this.nodes.length === 1 && only !== undefined) return `the broker at ${only.redactedUrl}`;
    return `the cluster nodes ${this.nodes.map((node) => node.redactedUrl).join(', ')}`;
  }

  get currentNode(): BrokerNode {
    return this.nodes[this.current] as BrokerNode;
  }

  /** The connection to the current node was lost: the next connect tries the next node first. */
  lost(): void {
    this.moveOn = this.nodes.length > 1;
  }

  /**
   * Tries each node once, in order from the next one to try; resolves with the first connection
   * made and rejects with the last node's error when none answers.
   */
  async connect<T>(open: (node: BrokerNode) => Promise<T>): Promise<T> {
    const start = this.moveOn ? this.current + 1 : this.current;
    let lastError: unknown;
    for (let step = 0; step < this.nodes.length; step++) {
      const index = (start + step) % this.nodes.length;
      try {
        const connection = await open(this.nodes[index] as BrokerNode);
        this.current = index;
        this.moveOn = false;
        return connection;
      } catch (error) {
        lastError = error;
      }
    }
    // None answered: the next round starts where this one did.
    throw lastError;
  }
}

function shuffle<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
  }
  return copy;
}
