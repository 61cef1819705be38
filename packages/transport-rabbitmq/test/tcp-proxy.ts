import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

/** A loopback TCP proxy in front of the broker whose live connections a test can cut. */
export interface TcpProxy {
  /** The broker URL rewritten to go through the proxy. */
  readonly url: string;
  /** Connections currently open through the proxy. */
  readonly connections: number;
  /** Destroys every open connection (both sides); new ones are still accepted. */
  cut(): void;
  /** Refuses (closes at once) every new connection until `resume`: the broker is "down". */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(brokerUrl: string): Promise<TcpProxy> {
  const target = new URL(brokerUrl);
  const targetHost = target.hostname;
  const targetPort = Number(target.port || 5672);
  const pairs = new Set<[Socket, Socket]>();
  let paused = false;
  const server: Server = createServer((client) => {
    if (paused) {
      client.destroy();
      return;
    }
    const upstream = tcpConnect({ host: targetHost, port: targetPort });
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const cut = () => {
    for (const [client, upstream] of [...pairs]) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
  };
  const proxied = new URL(brokerUrl);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(port);
  return {
    url: proxied.toString(),
    get connections() {
      return pairs.size;
    },
    cut,
    pause() {
      paused = true;
    },
    resume() {
      paused = false;
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
