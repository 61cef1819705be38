import type { MessageDefinition } from '../messages/define-message.js';

/** A reply as a callback sees it: a message of some type, or a return code. */
export type Reply<T = unknown> =
  | {
      readonly kind: 'message';
      readonly messageType: string;
      readonly body: T;
      readonly headers: Readonly<Record<string, string>>;
    }
  | {
      readonly kind: 'code';
      readonly code: number;
      readonly headers: Readonly<Record<string, string>>;
    };

/** What a request waits for: a message of one type, a return code, or any reply. */
export type ReplyExpectation = MessageDefinition | 'code' | 'any';
