import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { Container } from 'rhea';
import { type PeerCertificate, peerCertificate } from './certificate.js';
import { forget } from './links.js';
import type { PeerState } from './peer-state.js';

/** The port the peer listens on: AMQP for the SDK's clients and HTTPS for its management API. */
export interface PeerListener {
  readonly port: number;
  /** The management API's certificate; undefined with `management: false`. */
  readonly certificate: PeerCertificate | undefined;
  /** Serves the management API; undefined with `management: false`. */
  readonly management: HttpsServer | undefined;
  /** Closes the sockets that are not AMQP connections, then stops listening. */
  close(): Promise<void>;
}

export async function listen(container: Container, state: PeerState): Promise<PeerListener> {
  const { settings, sockets, consumerLinks, replyLinks } = state;
  const certificate = settings.management ? await peerCertificate() : undefined;
  const server = container.listen({
    port: settings.port,
    host: '127.0.0.1',
    treat_modified_as_released: false,
  } as never) as unknown as Server;
  const acceptAmqp = (socket: Socket) => {
    for (const listener of rheaAccept) listener.call(server, socket);
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => {
      sockets.delete(socket);
      // rhea only notices 'end' and 'error'; a socket this side destroyed emits neither.
      for (const connection of new Set([...consumerLinks.keys(), ...replyLinks.keys()])) {
        if ((connection as unknown as { socket?: Socket }).socket === socket)
          forget(state, connection);
      }
    });
  };
  // rhea's listen adds the 'connection' handler that accepts AMQP; the peer decides first.
  const rheaAccept = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  /** HTTPS sockets and those not yet sniffed: closed with the peer, not counted as connections. */
  const otherSockets = new Set<Socket>();
  const management =
    certificate === undefined
      ? undefined
      : createHttpsServer({ cert: certificate.cert, key: certificate.key });
  if (management === undefined) {
    server.on('connection', acceptAmqp);
  } else {
    // The SDK's administration client talks HTTPS to the connection string's host and port,
    // where its AMQP client talks plain AMQP (UseDevelopmentEmulator): one port serves both.
    // An AMQP client speaks first (its protocol header, 'A'), so is a TLS client (a handshake
    // record, 0x16): the first byte tells them apart without a round trip.
    server.on('connection', (socket: Socket) => {
      // Until a protocol owns the socket, a reset must not become an unhandled 'error'.
      const ignore = () => {};
      socket.on('error', ignore);
      otherSockets.add(socket);
      socket.once('close', () => otherSockets.delete(socket));
      socket.once('data', (first: Buffer) => {
        socket.pause();
        socket.unshift(first);
        if (first[0] === 0x16) {
          // The TLS socket reads what is buffered itself (node's _tls_wrap initRead); resuming
          // here would emit that handshake to no one.
          management.emit('connection', socket);
        } else {
          otherSockets.delete(socket);
          socket.off('error', ignore);
          acceptAmqp(socket);
          // pause() above stops a later 'data' listener (rhea's) from resuming the socket.
          socket.resume();
        }
      });
    });
  }
  await new Promise<void>((resolve, reject) => {
    if (server.listening) resolve();
    else {
      server.once('listening', () => resolve());
      server.once('error', reject);
    }
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    certificate,
    management,
    async close() {
      for (const socket of otherSockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
