import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server } from 'node:tls';
import { createEndpoint, defineMessage, type Endpoint, TidingsError } from '@tidings/core';
import { recordingLogger } from '@tidings/transport-tests';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import { brokerUrl, deleteTopology } from './broker.ts';
import { disposeEndpoints, uniquePrefix } from './helpers.ts';

const Ping = defineMessage<{ n: number }>('tls.Ping');
const Pong = defineMessage<{ n: number }>('tls.Pong');

/**
 * A TLS front for the local broker: a self-signed certificate made with openssl, terminating TLS
 * and piping plain AMQP to 127.0.0.1:5672. The transport speaks real amqps:// to it.
 */
let dir: string;
let server: Server;
let port: number;
let ca: Buffer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tidings-tls-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  ca = readFileSync(join(dir, 'cert.pem'));
  const target = new URL(brokerUrl);
  server = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert: ca }, (socket) => {
    const upstream = connect(Number(target.port || 5672), target.hostname);
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  // Endpoints declare an exchange per handled type; remove the ones this file made.
  await deleteTopology([], [Ping.name, Pong.name]);
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

describe('TLS (amqps://)', () => {
  it('connects through TLS with a custom CA and does request/reply', async () => {
    const prefix = uniquePrefix('tls');
    const target = new URL(brokerUrl);
    const url = `amqps://${target.username}:${target.password}@localhost:${port}${target.pathname}`;
    const endpoints: Endpoint[] = [];
    try {
      const transport = () => createRabbitMqTransport({ url, tls: { ca } });
      const server = createEndpoint({
        name: `${prefix}-Server`,
        transport: transport(),
        logger: recordingLogger(),
      });
      server.handle(Ping, async (p, ctx) => ctx.reply(Pong, { n: p.n + 1 }));
      await server.start();
      endpoints.push(server);
      const client = createEndpoint({
        name: `${prefix}-Client`,
        transport: transport(),
        logger: recordingLogger(),
        routes: { [Ping.name]: `${prefix}-Server` },
      });
      await client.start();
      endpoints.push(client);
      await expect(client.request(Ping, { n: 1 }, { expect: Pong })).resolves.toEqual({ n: 2 });
    } finally {
      await disposeEndpoints(endpoints);
    }
  });

  it('refuses a server certificate it does not trust, without the password in the error', async () => {
    const target = new URL(brokerUrl);
    const url = `amqps://${target.username}:s3cret-pass@localhost:${port}${target.pathname}`;
    const endpoint = createEndpoint({
      name: uniquePrefix('tls-untrusted'),
      transport: createRabbitMqTransport({ url, unavailableTimeoutMs: 2000 }),
      logger: recordingLogger(),
    });
    const error = await endpoint.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TidingsError);
    expect(String((error as Error).message)).not.toContain('s3cret-pass');
    await endpoint.stop();
  });

  it('a node list over TLS: every address gets the TLS settings and redaction', async () => {
    const prefix = uniquePrefix('tls-nodes');
    const target = new URL(brokerUrl);
    const tlsNode = `amqps://${target.username}:${target.password}@localhost:${port}${target.pathname}`;
    // A first node that is down: the endpoint moves on to the TLS one.
    const urls = [`amqps://${target.username}:n0de-secret@localhost:1`, tlsNode];
    const endpoint = createEndpoint({
      name: `${prefix}-Server`,
      transport: createRabbitMqTransport({ urls, tls: { ca } }),
      logger: recordingLogger(),
    });
    endpoint.handle(Ping, async (p, ctx) => ctx.reply(Pong, { n: p.n + 1 }));
    try {
      await endpoint.start();
      await expect(
        endpoint.request(Ping, { n: 1 }, { expect: Pong, to: `${prefix}-Server` }),
      ).resolves.toEqual({ n: 2 });
    } finally {
      await disposeEndpoints([endpoint]);
    }
    // Without the CA neither node is trusted; the error names them without their passwords.
    const untrusted = createEndpoint({
      name: `${prefix}-Untrusted`,
      transport: createRabbitMqTransport({ urls, unavailableTimeoutMs: 2000 }),
      logger: recordingLogger(),
    });
    const error = await untrusted.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TidingsError);
    expect(String((error as Error).message)).not.toMatch(/n0de-secret|guest@/);
    await untrusted.stop();
  });
});
