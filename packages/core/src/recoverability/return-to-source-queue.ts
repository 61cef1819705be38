import { checkWholeNumber } from '../configuration/option-checks.js';
import { TransportUnavailableError } from '../errors.js';
import { type Logger, silentLogger } from '../logging/logger.js';
import { type LongTimer, setLongTimeout } from '../long-timer.js';
import { checkQueueName, isValidDestination } from '../messages/destination-name.js';
import { Headers, headerCount } from '../messages/headers.js';
import type {
  IncomingTransportMessage,
  MessageOutcome,
  Transport,
  TransportEndpoint,
} from '../transport/transport.js';
import { errorMessage } from '../util.js';

/** A message in the error queue, as `returnToSourceQueue`'s filter sees it. */
export interface FailedMessage {
  readonly messageId: string;
  readonly messageType: string | undefined;
  /** The queue it failed in, where it goes back to. Undefined when the header is missing. */
  readonly failedQueue: string | undefined;
  readonly exceptionType: string | undefined;
  readonly exceptionMessage: string | undefined;
  readonly timeOfFailure: string | undefined;
  readonly headers: Readonly<Record<string, string>>;
}

export interface ReturnToSourceQueueOptions {
  /** A transport reaching the broker the endpoints use. The connection opened on it is closed before this returns. */
  readonly transport: Transport;
  /** @default 'error' */
  readonly errorQueue?: string;
  /** Which messages go back; the others stay in the error queue. @default every message */
  readonly filter?: (message: FailedMessage) => boolean;
  /**
   * Stop once no message has arrived for this long, counted from when the error queue is being
   * read (on Kafka, once the consumer group has joined).
   * @default 5_000
   */
  readonly idleMs?: number;
  /**
   * How long the error queue may take to start being read (a Kafka consumer group's join) before
   * the pass ends with a `TransportUnavailableError`.
   * @default 60_000
   */
  readonly startTimeoutMs?: number;
  /** @default silentLogger */
  readonly logger?: Logger;
}

export interface ReturnToSourceQueueResult {
  /** Sent back to the queue they failed in, without their failure headers. */
  readonly returned: number;
  /** Left in the error queue: filtered out, without a failed-queue header, or refused there. */
  readonly kept: number;
}

/** Recorded when the message was moved to the error queue; dropped when it goes back. */
const FAILURE_HEADERS: ReadonlySet<string> = new Set([
  Headers.ExceptionType,
  Headers.ExceptionCode,
  Headers.ExceptionMessage,
  Headers.ExceptionStack,
  Headers.FailedQueue,
  Headers.TimeOfFailure,
  // Back in its queue, the message gets every retry again.
  Headers.DelayedRetries,
]);

/** How long a kept message waits before it goes round again in a partitioned error queue. */
const ROUND_AGAIN_PACE_MS = 100;

/**
 * Sends the messages in an error queue back to the queues they failed in, once whatever made them
 * fail is fixed. Each keeps its message id, so idempotent handlers stay safe, and counts the
 * return in `tidings.returns`. One pass: messages
 * that stay (filtered out, or whose queue is gone) go to the back of the error queue, and the pass
 * ends once they have all come round again with nothing new between, or nothing arrives for
 * `idleMs`. In a partitioned queue (Kafka) a kept message can come round before other partitions
 * have been read, so there only `idleMs` without a new message ends the pass, and kept messages
 * go round at a slow pace meanwhile. Every move is at-least-once: a message leaves the error queue
 * only after its copy is confirmed where it goes.
 */
export async function returnToSourceQueue(
  options: ReturnToSourceQueueOptions,
): Promise<ReturnToSourceQueueResult> {
  const errorQueue = checkQueueName('errorQueue', options.errorQueue ?? 'error');
  const idleMs = checkWholeNumber('idleMs', options.idleMs ?? 5_000);
  const partitioned = options.transport.capabilities.partitionedQueues === true;
  const startTimeoutMs = checkWholeNumber('startTimeoutMs', options.startTimeoutMs ?? 60_000);
  const logger = options.logger ?? silentLogger;
  const filter = options.filter ?? (() => true);
  let returned = 0;
  let kept = 0;
  /** Copies seen in this pass, by `copyKey`. */
  const seen = new Set<string>();
  /** Messages in a row that were seen before in this pass. */
  let roundAgain = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let done = false;
  let idle: LongTimer | undefined;
  const stop = () => {
    done = true;
    idle?.clear();
    finish();
  };
  const stillIdle = () => {
    idle?.clear();
    idle = setLongTimeout(stop, idleMs);
  };

  const connection: TransportEndpoint = await options.transport.openEndpoint(
    { endpointName: errorQueue, inputQueue: errorQueue, errorQueue, subscriptions: [] },
    { logger },
  );
  const send = (
    queue: string,
    message: IncomingTransportMessage,
    headers: Record<string, string>,
  ) =>
    connection.dispatch([
      {
        destination: { kind: 'queue', queue },
        message: { messageId: message.messageId, headers, body: message.body },
        // As it came, less the failure headers: what the transport cannot read stays unread.
        copyOf: message,
      },
    ]);
  // To the back of the error queue, as it is, so the pass can go on past it.
  const toBack = (message: IncomingTransportMessage) =>
    send(errorQueue, message, { ...message.headers });
  const keep = async (message: IncomingTransportMessage): Promise<MessageOutcome> => {
    await toBack(message);
    kept++;
    return 'complete';
  };

  const onMessage = async (message: IncomingTransportMessage): Promise<MessageOutcome> => {
    // Past the end of the pass: left where it is, for the next one.
    if (done) return 'abandon';
    const key = copyKey(message);
    const again = seen.has(key);
    // In a partitioned queue only a new message shows that the pass is not over.
    if (!again || !partitioned) stillIdle();
    try {
      if (again) {
        if (partitioned) {
          // Other partitions may hold messages not read yet: go round again, slowly, until the
          // pass goes idle.
          await new Promise((resolve) =>
            setTimeout(resolve, Math.min(ROUND_AGAIN_PACE_MS, idleMs)),
          );
          if (done) return 'abandon';
          await toBack(message);
          return 'complete';
        }
        // Round again: to the back once more, uncounted. Once every message kept in this pass has
        // come round with nothing new between, only kept messages are left.
        await toBack(message);
        if (++roundAgain >= kept) stop();
        return 'complete';
      }
      roundAgain = 0;
      seen.add(key);
      const h = message.headers;
      const failed: FailedMessage = {
        messageId: message.messageId,
        messageType: h[Headers.MessageType],
        failedQueue: h[Headers.FailedQueue],
        exceptionType: h[Headers.ExceptionType],
        exceptionMessage: h[Headers.ExceptionMessage],
        timeOfFailure: h[Headers.TimeOfFailure],
        headers: h,
      };
      if (failed.failedQueue === undefined || !filter(failed)) return await keep(message);
      if (!isValidDestination(failed.failedQueue)) {
        // Read from the message: a name no transport may be given ('..', a path) stays here.
        logger.warn(
          `A message's failed queue ${JSON.stringify(failed.failedQueue.slice(0, 300))} is not a valid queue name; it stays in '${errorQueue}'`,
          { messageId: message.messageId },
        );
        return await keep(message);
      }
      const headers: Record<string, string> = {};
      for (const name in h) if (!FAILURE_HEADERS.has(name)) headers[name] = h[name] as string;
      // Counted, so a transport can tell this send from the message's earlier ones (a broker's
      // duplicate detection would drop it as a repeat).
      headers[Headers.Returns] = String(headerCount(h, Headers.Returns) + 1);
      try {
        await send(failed.failedQueue, message, headers);
      } catch (error) {
        logger.warn(
          `Could not return a message to '${failed.failedQueue}'; it stays in '${errorQueue}'`,
          {
            messageId: message.messageId,
            error: errorMessage(error),
          },
        );
        return await keep(message);
      }
      returned++;
      return 'complete';
    } catch (error) {
      // The error queue itself refused it (or the filter threw): stop here rather than go round
      // the same message again. It stays, and so does everything after it.
      logger.warn(
        `Could not move a message in '${errorQueue}'; it stays there, and the pass ends`,
        {
          messageId: message.messageId,
          error: errorMessage(error),
        },
      );
      stop();
      return 'abandon';
    }
  };

  try {
    await connection.startReceiving({ concurrency: 1, onMessage });
    // Idle time counts from when the queue is being read, not while a consumer group joins.
    await readingWithin(connection, startTimeoutMs, errorQueue);
    if (!done) stillIdle();
    await finished;
  } finally {
    stop();
    await connection.stopReceiving();
    await connection.close();
  }
  logger.info(`Returned ${returned} message(s) from '${errorQueue}'; ${kept} stay there`);
  return { returned, kept };
}

/**
 * Which copy in the error queue this is. Not the message id alone: an event that failed in two
 * endpoints has a copy from each, with one id, and the second is not the first come round again.
 * The failed queue and the time of failure tell them apart, and stay as they are while a kept
 * copy goes round.
 */
function copyKey(message: IncomingTransportMessage): string {
  const h = message.headers;
  return `${message.messageId}\n${h[Headers.FailedQueue] ?? ''}\n${h[Headers.TimeOfFailure] ?? ''}`;
}

/** Waits for the transport to be reading (where it says when), at most `timeoutMs`. */
async function readingWithin(
  connection: TransportEndpoint,
  timeoutMs: number,
  queue: string,
): Promise<void> {
  if (connection.whenReceiving === undefined) return;
  let timer: LongTimer | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setLongTimeout(
      () =>
        reject(
          new TransportUnavailableError(
            `'${queue}' was not being read after ${timeoutMs} ms (a Kafka consumer group may still be joining). Try again, or raise startTimeoutMs.`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    await Promise.race([connection.whenReceiving(), timedOut]);
  } finally {
    timer?.clear();
  }
}
