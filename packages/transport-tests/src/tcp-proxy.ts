import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * A loopback TCP proxy in front of one broker, for fault tests: a transport connected through it
 * can have every connection cut, or new ones refused, without touching other broker users.
 */
export interface TcpProxy {
  /** The port it listens on, at 127.0.0.1. */
  readonly port: number;
  /** Connections currently open through the proxy. */
  readonly connections: number;
  /** Destroys every open connection (both sides); new ones are still accepted. Returns how many. */
  cut(): number;
  /** Refuses (closes at once) every new connection until `resume`: the broker looks down. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

/**
 * Streams a connection's bytes pass through, one pair per connection (both see the same
 * connection, so they can share what it has said): to read or rewrite a broker protocol.
 */
export interface ProxyInterceptor {
  readonly toUpstream: Duplex;
  readonly toClient: Duplex;
}

export async function startTcpProxy(
  target: { host: string; port: number },
  intercept?: () => ProxyInterceptor,
): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let paused = false;
  const server: Server = createServer((client) => {
    if (paused) {
      client.destroy();
      return;
    }
    // Nagle off on both legs, as the transports set it: the proxy must not add latency.
    const upstream = connect({ host: target.host, port: target.port, noDelay: true });
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
    if (intercept === undefined) {
      client.pipe(upstream);
      upstream.pipe(client);
    } else {
      const { toUpstream, toClient } = intercept();
      toUpstream.on('error', drop);
      toClient.on('error', drop);
      client.pipe(toUpstream).pipe(upstream);
      upstream.pipe(toClient).pipe(client);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
  const cut = () => {
    const count = pairs.size;
    for (const [client, upstream] of [...pairs]) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
    return count;
  };
  return {
    port: address.port,
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
