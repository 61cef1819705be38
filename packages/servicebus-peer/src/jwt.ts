import { createHmac, timingSafeEqual } from 'node:crypto';

/** The audience Service Bus expects in a Microsoft Entra ID token. */
export const SERVICE_BUS_AUDIENCE = 'https://servicebus.azure.net';

const base64url = (value: Buffer | string) => Buffer.from(value).toString('base64url');

/**
 * A JWT as the peer's test credential issues it: HS256 with the peer's secret, where Entra ID
 * signs RS256 with its published keys. The claims the peer reads are the ones Service Bus reads:
 * the audience, the expiry and the identity (`oid`) that role assignments name.
 */
export function signJwt(
  claims: { readonly oid: string; readonly exp: number; readonly aud?: string },
  secret: Buffer,
): string {
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = base64url(
    JSON.stringify({
      aud: SERVICE_BUS_AUDIENCE,
      iss: 'https://sts.windows.net/servicebus-peer/',
      iat: Math.floor(Date.now() / 1000),
      ...claims,
    }),
  );
  const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

export interface JwtGrant {
  readonly verdict: 'ok' | 'invalid' | 'expired';
  readonly identity?: string;
  readonly expiresAt?: number;
}

/** Checks a JWT's signature, audience and expiry. */
export function readJwt(token: string, secret: Buffer, now = Date.now()): JwtGrant {
  const parts = token.split('.');
  if (parts.length !== 3) return { verdict: 'invalid' };
  const [header, payload, signature] = parts as [string, string, string];
  const expected = createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { verdict: 'invalid' };
  }
  let claims: { aud?: unknown; exp?: unknown; oid?: unknown };
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return { verdict: 'invalid' };
  }
  const audience = String(claims.aud ?? '').replace(/\/+$/, '');
  if (audience !== SERVICE_BUS_AUDIENCE || typeof claims.oid !== 'string') {
    return { verdict: 'invalid' };
  }
  const expiresAt = Number(claims.exp) * 1000;
  if (!(expiresAt > now)) return { verdict: 'expired' };
  return { verdict: 'ok', identity: claims.oid, expiresAt };
}
