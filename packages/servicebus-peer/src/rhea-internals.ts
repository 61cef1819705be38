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
