import { describe, expect, it } from 'vitest';
import { type BrokerNode, brokerNodes, NodeCursor } from '../src/broker-nodes.ts';

const urls = ['amqp://a:pa@one:5672', 'amqp://b:pb@two:5672', 'amqps://c:p%40c@three:5671/v'];

/** Connects to the nodes whose host is up, recording every attempt. */
function cluster(up: Set<string>) {
  const tried: string[] = [];
  const open = async (node: BrokerNode) => {
    const host = new URL(node.connectUrl).hostname;
    tried.push(host);
    if (!up.has(host)) throw new Error(`ECONNREFUSED ${host}`);
    return host;
  };
  return { tried, open };
}

describe('broker nodes', () => {
  it('parses every URL, adds the heartbeat, redacts each and collects every password', () => {
    const { nodes, secrets } = brokerNodes(urls, 7, 'phrase');
    expect(nodes.map((node) => new URL(node.connectUrl).searchParams.get('heartbeat'))).toEqual([
      '7',
      '7',
      '7',
    ]);
    expect(nodes.map((node) => node.redactedUrl).join(' ')).not.toMatch(/pa@|pb@|p%40c|p@c/);
    expect(secrets).toEqual(expect.arrayContaining(['phrase', 'pa', 'pb', 'p%40c', 'p@c']));
  });

  it('in order: starts with the first, and after a loss tries the next first, wrapping around', async () => {
    const { nodes } = brokerNodes(urls, 10, undefined);
    const cursor = new NodeCursor(nodes, 'in-order');
    const all = cluster(new Set(['one', 'two', 'three']));
    expect(await cursor.connect(all.open)).toBe('one');
    // Without a loss (a failure after connecting, say) the same node is tried again first.
    expect(await cursor.connect(all.open)).toBe('one');
    cursor.lost();
    expect(await cursor.connect(all.open)).toBe('two');
    cursor.lost();
    const onlyOne = cluster(new Set(['one']));
    expect(await cursor.connect(onlyOne.open)).toBe('one');
    expect(onlyOne.tried).toEqual(['three', 'one']);
  });

  it('none answers: rejects after one try of each, with the last error', async () => {
    const { nodes } = brokerNodes(urls, 10, undefined);
    const cursor = new NodeCursor(nodes, 'in-order');
    const none = cluster(new Set());
    await expect(cursor.connect(none.open)).rejects.toThrow('ECONNREFUSED three');
    expect(none.tried).toEqual(['one', 'two', 'three']);
  });

  it('shuffled: every node, each once, in an order of its own per cursor', async () => {
    const { nodes } = brokerNodes(urls, 10, undefined);
    const firsts = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const none = cluster(new Set());
      await new NodeCursor(nodes, 'shuffled').connect(none.open).catch(() => {});
      expect([...none.tried].sort()).toEqual(['one', 'three', 'two']);
      firsts.add(none.tried[0] as string);
    }
    expect(firsts.size).toBeGreaterThan(1);
  });
});
