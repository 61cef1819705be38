import {
  createEndpoint,
  createInMemoryTransport,
  type EndpointOptions,
  type IncomingTransportMessage,
  type Logger,
  silentLogger,
  type Transport,
} from '../src/index.ts';

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
