/**
 * Removes credentials from a connection URL (`amqp://user:pass@host` → `amqp://user:***@host`)
 * so it can be logged or put in an error message.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const key of [...parsed.searchParams.keys()]) {
      if (/pass|secret|key|token|signature|sig/i.test(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.toString();
  } catch {
    return '<unparseable url>';
  }
}

/** Replaces every occurrence of each secret in `text`; for error messages that echo native ones. */
export function redactSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret && secret.length >= 3) result = result.split(secret).join('***');
  }
  return result;
}
