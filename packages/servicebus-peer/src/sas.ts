import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Checks a SharedAccessSignature the way Service Bus does: HMAC-SHA256 over
 * `<url-encoded resource>\n<expiry>` with the named key (the SDK signs in
 * @azure/core-amqp src/auth/tokenProvider.ts, createSasTokenProvider / signString).
 */
export function verifySasToken(
  token: string,
  keys: ReadonlyMap<string, string>,
  now = Date.now(),
): 'ok' | 'invalid' | 'expired' {
  if (!token.startsWith('SharedAccessSignature ')) return 'invalid';
  const fields = new Map<string, string>();
  for (const part of token.slice('SharedAccessSignature '.length).split('&')) {
    const at = part.indexOf('=');
    if (at > 0) fields.set(part.slice(0, at), part.slice(at + 1));
  }
  const resource = fields.get('sr');
  const signature = fields.get('sig');
  const expiry = fields.get('se');
  const keyName = fields.get('skn');
  if (!resource || !signature || !expiry || !keyName) return 'invalid';
  const key = keys.get(keyName);
  if (key === undefined) return 'invalid';
  const expected = createHmac('sha256', key).update(`${resource}\n${expiry}`).digest('base64');
  const given = Buffer.from(decodeURIComponent(signature));
  const wanted = Buffer.from(expected);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) return 'invalid';
  if (Number(expiry) * 1000 < now) return 'expired';
  return 'ok';
}
