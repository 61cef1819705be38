import { connect as tcpConnect } from 'node:net';

/**
 * Whether something listens at the URL's host and port (or `defaultPort`): a suite whose broker
 * or database is not there reports itself unavailable instead of failing the whole run.
 */
export function reachable(url: string, defaultPort: number): Promise<boolean> {
  const target = new URL(url);
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: target.hostname, port: Number(target.port || defaultPort) });
    socket.setTimeout(2_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}
