import { randomUUID } from 'node:crypto';
import type { MessageDefinition, PublishOptions, ReplyOptions, SendOptions } from '@tidings/core';

/** A message sent (`send`, `request`, `send(...).register`) through a test double. */
export interface RecordedSend<T = unknown> {
  readonly intent: 'send';
  readonly definition: MessageDefinition<T>;
  readonly messageType: string;
  readonly payload: T;
  /** The options as given (`to`, `headers`, `messageId`, `delayMs`). */
  readonly options: SendOptions;
  /** `options.to`, else the route configured for the type, else undefined. */
  readonly destination: string | undefined;
  /** `options.messageId`, or one made up for it. */
  readonly messageId: string;
}

/** An event published through a test double. */
export interface RecordedPublish<T = unknown> {
  readonly intent: 'publish';
  readonly definition: MessageDefinition<T>;
  readonly messageType: string;
  readonly payload: T;
  readonly options: PublishOptions;
  readonly messageId: string;
}

/** A reply a handler made through a test context. */
export type RecordedReply<T = unknown> =
  | {
      readonly kind: 'message';
      readonly definition: MessageDefinition<T>;
      readonly messageType: string;
      readonly payload: T;
      readonly options: ReplyOptions;
    }
  | {
      readonly kind: 'code';
      readonly code: number;
      readonly options: ReplyOptions;
    };

/** Keeps the records whose message type is `definition`'s, typed with its payload. */
export function ofType<T, R extends { readonly messageType?: string }>(
  records: readonly R[],
  definition: MessageDefinition<T>,
): Array<R & { readonly payload: T }> {
  return records.filter((record) => record.messageType === definition.name) as Array<
    R & { readonly payload: T }
  >;
}

/** The record of a send; a message id is made up when the options give none. */
export function sendRecord<T>(
  definition: MessageDefinition<T>,
  payload: T,
  options: SendOptions,
  destination: string | undefined,
): RecordedSend<T> {
  return {
    intent: 'send',
    definition,
    messageType: definition.name,
    payload,
    options,
    destination,
    messageId: options.messageId ?? randomUUID(),
  };
}

/** The record of a publish; a message id is made up when the options give none. */
export function publishRecord<T>(
  definition: MessageDefinition<T>,
  payload: T,
  options: PublishOptions,
): RecordedPublish<T> {
  return {
    intent: 'publish',
    definition,
    messageType: definition.name,
    payload,
    options,
    messageId: options.messageId ?? randomUUID(),
  };
}
