import {
  createEndpoint,
  createInMemoryTransport,
  type EndpointOptions,
  type Logger,
  silentLogger,
  type Transport,
} from '../src/index.ts';
import type { IncomingTransportMessage } from '../src/transport/index.ts';

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown> | undefined;
}

/** A logger that keeps what it is told, to assert on warnings. */
export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: LogLine['level']) => (message: string, fields?: Record<string, unknown>) =>
    void lines.push({ level, message, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Endpoints on one in-memory transport, stopped after the test by `stopAll`. */
export function world() {
  const transport = createInMemoryTransport();
  const made: Array<ReturnType<typeof createEndpoint>> = [];
  return {
    transport,
    endpoint(
      options: Omit<EndpointOptions, 'transport'> & { transport?: EndpointOptions['transport'] },
    ) {
      const endpoint = createEndpoint({ logger: recordingLogger(), transport, ...options });
      made.push(endpoint);
      return endpoint;
    },
    async stopAll() {
      await Promise.all(made.map((endpoint) => endpoint.stop()));
    },
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads a queue through the transport SPI, recording every message (the error queue, say). */
export async function readQueue(transport: Transport, queue: string) {
  const messages: IncomingTransportMessage[] = [];
  const connection = await transport.openEndpoint(
    { endpointName: queue, inputQueue: queue, errorQueue: `${queue}.unused`, subscriptions: [] },
    { logger: silentLogger },
  );
  await connection.startReceiving({
    concurrency: 4,
    onMessage: async (message) => {
      messages.push(message);
      return 'complete';
    },
  });
  return { messages, close: () => connection.close() };
}

/** Puts a hand-made message into a queue through the SPI, as a foreign or broken sender would. */
export async function putRaw(
  transport: Transport,
  queue: string,
  messageId: string,
  headers: Record<string, string>,
  body: Uint8Array = Buffer.from('{"n":1}'),
): Promise<void> {
  const connection = await transport.openEndpoint(
    // Naming the queue as the error queue makes sure it exists.
    { endpointName: 'raw', errorQueue: queue, subscriptions: [] },
    { logger: silentLogger },
  );
  await connection.dispatch([
    { message: { messageId, headers, body }, destination: { kind: 'queue', queue } },
  ]);
  await connection.close();
}
