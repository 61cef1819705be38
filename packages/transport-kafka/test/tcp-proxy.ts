import { startTcpProxy, type TcpProxy } from '@tidings/transport-tests';

/** One proxy per broker, and the options that route a client through them. */
export async function proxyCluster(brokers: readonly string[]): Promise<{
  readonly brokers: string[];
  mapBrokerAddress(address: { host: string; port: number }): { host: string; port: number };
  cutAll(): number;
  /** Refuses new connections to every broker until `resumeAll`: the cluster looks down. */
  pauseAll(): void;
  resumeAll(): void;
  close(): Promise<void>;
}> {
  const proxies = new Map<string, TcpProxy>();
  for (const broker of brokers) {
    const [host, port] = broker.split(':') as [string, string];
    proxies.set(broker, await startTcpProxy({ host, port: Number(port) }));
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
    cutAll: () => [...proxies.values()].reduce((sum, p) => sum + p.cut(), 0),
    pauseAll: () => {
      for (const proxy of proxies.values()) proxy.pause();
    },
    resumeAll: () => {
      for (const proxy of proxies.values()) proxy.resume();
    },
    close: async () => {
      await Promise.all([...proxies.values()].map((p) => p.close()));
    },
  };
}
