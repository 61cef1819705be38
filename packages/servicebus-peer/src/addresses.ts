export const DEAD_LETTER_SUFFIX = '/$deadletterqueue';
export const MANAGEMENT_SUFFIX = '/$management';

/** Entity paths are case-insensitive in Service Bus; clients may send the full `sb://host/path`. */
export function normalise(address: string | undefined): string {
  let path = String(address ?? '');
  const scheme = path.indexOf('://');
  if (scheme >= 0) {
    const slash = path.indexOf('/', scheme + 3);
    path = slash >= 0 ? path.slice(slash + 1) : '';
  }
  return path.replace(/^\/+|\/+$/g, '').toLowerCase();
}
