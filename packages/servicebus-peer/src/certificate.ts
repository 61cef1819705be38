import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** A self-signed certificate for 127.0.0.1 and its private key, both PEM. */
export interface PeerCertificate {
  readonly cert: string;
  readonly key: string;
}

let shared: Promise<PeerCertificate> | undefined;

/**
 * The certificate the management endpoint serves. Node cannot create X.509 certificates by
 * itself, so the `openssl` CLI makes one (about 20 ms) once per process; the key lives in
 * memory only: its temporary directory is removed at once.
 */
export function peerCertificate(): Promise<PeerCertificate> {
  shared ??= generate().catch((error: unknown) => {
    shared = undefined;
    throw new Error(
      `The Service Bus peer needs the openssl CLI for its management endpoint's certificate (or start it with management: false): ${String(error)}`,
    );
  });
  return shared;
}

async function generate(): Promise<PeerCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'servicebus-peer-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    // The SDK connects to https://127.0.0.1:PORT, so the name to match is the IP address.
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '7',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ]);
    const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
    return { cert, key };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
