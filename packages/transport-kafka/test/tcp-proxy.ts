import { connect, createServer, type Server, type Socket } from 'node:net';

/** A TCP proxy to one broker that can cut every connection through it. */
export interface TcpProxy {
  readonly port: number;
  /** Connections cut so far. */
  readonly cuts: number;
  /** Destroys every open connection (both sides); new connections are accepted. */
  cutAll(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let cuts = 0;
  const server: Server = createServer((client) => {
    const upstream = connect({ host: targetHost, port: targetPort, noDelay: true });
    client.setNoDelay(true);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    get cuts() {
      return cuts;
    },
    cutAll() {
      const count = pairs.size;
      for (const [client, upstream] of [...pairs]) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      cuts += count;
      return count;
    },
    async close() {
      for (const [client, upstream] of pairs) {
        client.destroy();
        upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One proxy per broker, and the options that route a client through them. */
export async function proxyCluster(brokers: readonly string[]): Promise<{
  readonly brokers: string[];
  mapBrokerAddress(address: { host: string; port: number }): { host: string; port: number };
  cutAll(): number;
  close(): Promise<void>;
}> {
  const proxies = new Map<string, TcpProxy>();
  for (const broker of brokers) {
    const [host, port] = broker.split(':') as [string, string];
    proxies.set(broker, await startTcpProxy(host, Number(port)));
  }
  const byProxyPort = new Map([...proxies.values()].map((p) => [p.port, p]));
  return {
    brokers: [...proxies.values()].map((p) => `127.0.0.1:${p.port}`),
    // Brokers advertise their own addresses in metadata: send those through the proxies too.
    mapBrokerAddress(address) {
      if (address.host === '127.0.0.1' && byProxyPort.has(address.port)) return address;
      const proxy =
        proxies.get(`${address.host}:${address.port}`) ??
        (address.host === 'localhost' ? proxies.get(`127.0.0.1:${address.port}`) : undefined);
      return proxy ? { host: '127.0.0.1', port: proxy.port } : address;
    },
    cutAll: () => [...proxies.values()].reduce((sum, p) => sum + p.cutAll(), 0),
    close: async () => {
      await Promise.all([...proxies.values()].map((p) => p.close()));
    },
  };
}
