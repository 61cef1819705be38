import { createHmac, timingSafeEqual } from 'node:crypto';

/** The rights of a shared access policy, as Service Bus names its claims. */
export type PeerRight = 'Manage' | 'Send' | 'Listen';

/** What a SharedAccessSignature grants, once its signature is checked. */
export interface SasGrant {
  readonly verdict: 'ok' | 'invalid' | 'expired';
  /** The key (policy) that signed it. */
  readonly keyName?: string;
  /** The signed resource URI (`sr`), decoded: the namespace or an entity. */
  readonly resource?: string;
  /** When it stops being valid (`se`), in ms since the epoch. */
  readonly expiresAt?: number;
}

/**
 * Checks a SharedAccessSignature the way Service Bus does: HMAC-SHA256 over
 * `<url-encoded resource>\n<expiry>` with the named key (the SDK signs in
 * @azure/core-amqp src/auth/tokenProvider.ts, createSasTokenProvider / signString).
 */
export function readSasToken(
  token: string,
  keys: ReadonlyMap<string, string>,
  now = Date.now(),
): SasGrant {
  if (!token.startsWith('SharedAccessSignature ')) return { verdict: 'invalid' };
  const fields = new Map<string, string>();
  for (const part of token.slice('SharedAccessSignature '.length).split('&')) {
    const at = part.indexOf('=');
    if (at > 0) fields.set(part.slice(0, at), part.slice(at + 1));
  }
  const resource = fields.get('sr');
  const signature = fields.get('sig');
  const expiry = fields.get('se');
  const keyName = fields.get('skn');
  if (!resource || !signature || !expiry || !keyName) return { verdict: 'invalid' };
  const key = keys.get(keyName);
  if (key === undefined) return { verdict: 'invalid' };
  const expected = createHmac('sha256', key).update(`${resource}\n${expiry}`).digest('base64');
  const given = Buffer.from(decodeURIComponent(signature));
  const wanted = Buffer.from(expected);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) {
    return { verdict: 'invalid' };
  }
  const expiresAt = Number(expiry) * 1000;
  if (expiresAt < now) return { verdict: 'expired' };
  return { verdict: 'ok', keyName, resource: decodeURIComponent(resource), expiresAt };
}

/** `readSasToken`'s verdict alone. */
export function verifySasToken(
  token: string,
  keys: ReadonlyMap<string, string>,
  now = Date.now(),
): 'ok' | 'invalid' | 'expired' {
  return readSasToken(token, keys, now).verdict;
}
