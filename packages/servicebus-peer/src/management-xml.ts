/**
 * The XML of the management API: ATOM namespaces, escaping, .NET TimeSpan durations, the
 * description a PUT carries, and the errors a malformed or unauthorized request raises.
 */

export const ATOM_NS = 'http://www.w3.org/2005/Atom';
export const SB_NS = 'http://schemas.microsoft.com/netservices/2010/10/servicebus/connect';
export const XSI_NS = 'http://www.w3.org/2001/XMLSchema-instance';
/** .NET TimeSpan.MaxValue: what Service Bus reports for "never" (auto-delete, message TTL). */
export const FOREVER = 'P10675199DT2H48M5.4775807S';

export function escapeXml(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

export function unescapeXml(value: string): string {
  return value
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

/** An ISO 8601 duration as .NET's XmlConvert writes a TimeSpan (`PT1M`, `PT5M30S`, `P1D`). */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return FOREVER;
  let seconds = ms / 1000;
  const days = Math.floor(seconds / 86_400);
  seconds -= days * 86_400;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const time = `${hours ? `${hours}H` : ''}${minutes ? `${minutes}M` : ''}${seconds ? `${seconds}S` : ''}`;
  return `P${days ? `${days}D` : ''}${time ? `T${time}` : days ? '' : 'T0S'}`;
}

/** Parses what the SDK sends (`PT300S`, `P1DT2H`, TimeSpan.MaxValue); undefined means never. */
export function parseDuration(value: string | undefined): number | undefined {
  if (value === undefined || value === FOREVER) return undefined;
  const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?$/.exec(value.trim());
  if (match === null) throw new BadRequest(`'${value}' is not an ISO 8601 duration.`);
  const [, d = '0', h = '0', m = '0', s = '0'] = match;
  return ((Number(d) * 24 + Number(h)) * 60 + Number(m)) * 60_000 + Number(s) * 1000;
}

/** Answered 400: a request the peer cannot read or will not model. */
export class BadRequest extends Error {}

/** Answered 401: a token that is missing, invalid or lacks the Manage claim. */
export class Unauthorized extends Error {}

/** The description element of a PUT body and its simple child elements. */
export function parseDescription(body: string): { kind: string; fields: Map<string, string> } {
  // The SDK's serializeToAtomXmlRequest writes <entry><content><XDescription>...</XDescription>.
  // With no settings the description is an empty element: <QueueDescription xmlns="..."/>.
  const root = /<content\b[^>]*>\s*<(\w+)\b[^>]*?(?:\/>|>([\s\S]*)<\/\1>)\s*<\/content>/.exec(body);
  if (root === null) throw new BadRequest('The request body is not an ATOM entry with content.');
  const fields = new Map<string, string>();
  for (const [, name, value] of (root[2] ?? '').matchAll(/<(\w+)>([^<]*)<\/\1>/g)) {
    if (!fields.has(name as string)) fields.set(name as string, unescapeXml(value as string));
  }
  return { kind: root[1] as string, fields };
}

export function elements(
  fields: ReadonlyArray<readonly [string, string | number | boolean | undefined]>,
) {
  return fields
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `<${name}>${escapeXml(String(value))}</${name}>`)
    .join('');
}
