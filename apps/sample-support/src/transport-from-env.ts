import { ConfigurationError, createInMemoryTransport, type Transport } from '@tidings/core';

export type TransportName = 'learning' | 'in-memory' | 'rabbitmq' | 'kafka' | 'azure-service-bus';

const names: readonly TransportName[] = [
  'learning',
  'in-memory',
  'rabbitmq',
  'kafka',
  'azure-service-bus',
];

/** `TIDINGS_TRANSPORT`, default `learning` (files under `.tidings/`, no broker). */
export function transportName(env: NodeJS.ProcessEnv = process.env): TransportName {
  const name = (env.TIDINGS_TRANSPORT ?? 'learning') as TransportName;
  if (!names.includes(name)) {
    throw new ConfigurationError(`TIDINGS_TRANSPORT=${name} is not one of: ${names.join(', ')}.`);
  }
  return name;
}

function required(env: NodeJS.ProcessEnv, variable: string, transport: string): string {
  const value = env[variable];
  if (value === undefined || value === '') {
    throw new ConfigurationError(
      `TIDINGS_TRANSPORT=${transport} needs ${variable} (e.g. ${examples[variable]}).`,
    );
  }
  return value;
}

const examples: Record<string, string> = {
  RABBITMQ_URL: 'amqp://guest:guest@127.0.0.1:5672',
  KAFKA_BROKERS: '127.0.0.1:9092',
  SERVICEBUS_CONNECTION_STRING:
    'Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=...;SharedAccessKey=...',
};

/**
 * Builds the transport named by the environment; `clientId` names the process to the broker. Transport packages load on demand, so the
 * in-memory and learning paths never load a broker client.
 */
export async function transportFromEnv(
  clientId: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Transport> {
  const name = transportName(env);
  switch (name) {
    case 'in-memory':
      return createInMemoryTransport();
    case 'learning': {
      const { createLearningTransport } = await import('@tidings/transport-learning');
      return createLearningTransport({ rootDir: env.TIDINGS_LEARNING_DIR ?? '.tidings' });
    }
    case 'rabbitmq': {
      const url = required(env, 'RABBITMQ_URL', name);
      const { createRabbitMqTransport } = await import('@tidings/transport-rabbitmq');
      return createRabbitMqTransport({ url });
    }
    case 'kafka': {
      const brokers = required(env, 'KAFKA_BROKERS', name).split(',');
      const { createKafkaTransport } = await import('@tidings/transport-kafka');
      return createKafkaTransport({ brokers, clientId });
    }
    case 'azure-service-bus': {
      const connectionString = required(env, 'SERVICEBUS_CONNECTION_STRING', name);
      const { createAzureServiceBusTransport } = await import(
        '@tidings/transport-azure-service-bus'
      );
      return createAzureServiceBusTransport({ connectionString });
    }
  }
}
