import { UsageError } from '../errors.js';
import type { MessageDefinition } from '../messages/define-message.js';
import type { TransportOperation } from '../transport/transport.js';
import type { HandlerContext, PublishOptions, ReplyOptions, SendOptions } from './endpoint.js';
import type { OutgoingIntent } from './outgoing.js';

/** What a handler context needs from its endpoint. */
export interface ContextHost {
  readonly endpointName: string;
  readonly inputQueue: string | undefined;
  /** Validates the intent's options, resolves its route and builds the operation. */
  build(intent: OutgoingIntent): TransportOperation | Promise<TransportOperation>;
  resolveRoute(messageType: string, to: string | undefined): string;
  checkOptions(options: SendOptions | PublishOptions | undefined): void;
}

/**
 * The context of one handling attempt. Outgoing messages are collected and dispatched together
 * only after every handler succeeded, so a failed attempt sends nothing.
 */
export class MessageHandlerContext implements HandlerContext {
  readonly outgoing: TransportOperation[] = [];

  constructor(
    private readonly host: ContextHost,
    readonly messageId: string,
    readonly correlationId: string,
    readonly conversationId: string,
    readonly messageType: string,
    readonly headers: Readonly<Record<string, string>>,
    readonly replyTo: string | undefined,
    readonly signal: AbortSignal,
  ) {}

  get endpointName(): string {
    return this.host.endpointName;
  }

  reply<T>(definition: MessageDefinition<T>, payload: T, options?: ReplyOptions): Promise<void>;
  reply(code: number, options?: ReplyOptions): Promise<void>;
  async reply(
    definitionOrCode: MessageDefinition | number,
    payloadOrOptions?: unknown,
    maybeOptions?: ReplyOptions,
  ): Promise<void> {
    if (this.replyTo === undefined) {
      throw new UsageError(
        `Cannot reply to '${this.messageType}' (${this.messageId}): it has no reply-to address. It was sent by a send-only endpoint or by a sender that did not set 'tidings.reply-to'.`,
      );
    }
    const isCode = typeof definitionOrCode === 'number';
    if (isCode && !Number.isSafeInteger(definitionOrCode)) {
      throw new UsageError(`A return code must be an integer, got ${definitionOrCode}.`);
    }
    const options = (isCode ? payloadOrOptions : maybeOptions) as ReplyOptions | undefined;
    this.host.checkOptions(options);
    this.outgoing.push(
      await this.host.build({
        intent: 'reply',
        messageType: isCode ? undefined : definitionOrCode.name,
        payload: isCode ? undefined : payloadOrOptions,
        returnCode: isCode ? definitionOrCode : undefined,
        destination: { kind: 'queue', queue: this.replyTo },
        correlationId: this.correlationId,
        conversationId: this.conversationId,
        replyTo: this.host.inputQueue,
        userHeaders: options?.headers,
      }),
    );
  }

  async send<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options?: SendOptions,
  ): Promise<void> {
    this.host.checkOptions(options);
    const queue = this.host.resolveRoute(definition.name, options?.to);
    this.outgoing.push(
      await this.host.build({
        intent: 'send',
        messageType: definition.name,
        payload,
        destination: { kind: 'queue', queue },
        messageId: options?.messageId,
        correlationId: this.correlationId,
        conversationId: this.conversationId,
        replyTo: this.host.inputQueue,
        userHeaders: options?.headers,
        delayMs: options?.delayMs,
      }),
    );
  }

  async publish<T>(
    definition: MessageDefinition<T>,
    payload: T,
    options?: PublishOptions,
  ): Promise<void> {
    this.host.checkOptions(options);
    this.outgoing.push(
      await this.host.build({
        intent: 'publish',
        messageType: definition.name,
        payload,
        destination: { kind: 'publish', messageType: definition.name },
        messageId: options?.messageId,
        correlationId: this.correlationId,
        conversationId: this.conversationId,
        replyTo: this.host.inputQueue,
        userHeaders: options?.headers,
      }),
    );
  }
}
