import { startTcpProxy as startProxy, type TcpProxy } from '@tidings/transport-tests';

/** The shared TCP proxy, plus the broker URL rewritten to go through it. */
export type BrokerProxy = TcpProxy & { readonly url: string };

/** The shared TCP proxy in front of the broker. */
export async function startTcpProxy(brokerUrl: string): Promise<BrokerProxy> {
  const target = new URL(brokerUrl);
  const proxy = await startProxy({ host: target.hostname, port: Number(target.port || 5672) });
  const proxied = new URL(brokerUrl);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(proxy.port);
  return Object.assign(proxy, { url: proxied.toString() });
}
