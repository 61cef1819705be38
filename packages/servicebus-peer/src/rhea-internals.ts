import rhea, { type Message, type Receiver, type Sender } from 'rhea';

/** What rhea's typings leave out but its links carry (rhea lib/link.js). */
export interface LinkInternals {
  readonly remote: {
    readonly attach?: {
      readonly source?: { readonly address?: string } & Record<string, unknown>;
      readonly target?: { readonly address?: string } & Record<string, unknown>;
    };
  };
  readonly local: { readonly attach: Record<string, unknown> };
}

export function internals(link: Sender | Receiver): LinkInternals {
  return link as unknown as LinkInternals;
}

/** A delivery state rhea can put on a disposition frame. */
export type Outcome = { readonly described: true };

interface Outcomes {
  accepted(): { described(): Outcome };
  rejected(fields: { error: { condition: string; description: string } }): {
    described(): Outcome;
  };
  decode(buffer: Buffer): Message;
  encode(message: Message): Buffer;
}

/** rhea's outcome constructors and codec (rhea lib/message.js), typed. */
export const amqpMessage = rhea.message as unknown as Outcomes;

/** The message format of a transfer, set by rhea for non-zero formats (lib/session.js). */
export function formatOf(context: object): number {
  return (context as { format?: number }).format ?? 0;
}

interface OutgoingInternals {
  readonly next_pending_delivery: number;
  readonly next_delivery_id: number;
  readonly deliveries: { by_id(id: number): { readonly link?: unknown } | undefined };
}

/**
 * Whether `link` may take one more delivery. rhea's `sendable()` looks at the credit, which it
 * lowers only when it writes a transfer (lib/session.js, Outgoing.process), so a loop of sends
 * in one tick would hand out far more deliveries than the client granted: those still queued in
 * the session count against the credit here.
 */
export function hasCreditLeft(link: Sender): boolean {
  if (!link.sendable()) return false;
  const outgoing = (link as unknown as { session?: { outgoing?: OutgoingInternals } }).session
    ?.outgoing;
  if (outgoing === undefined) return true;
  let queued = 0;
  for (let id = outgoing.next_pending_delivery; id < outgoing.next_delivery_id; id++) {
    if (outgoing.deliveries.by_id(id)?.link === link) queued++;
  }
  return (link as unknown as { credit: number }).credit > queued;
}
