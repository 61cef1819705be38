import { execFileSync } from 'node:child_process';
import { createEndpoint, defineMessage, type Endpoint, silentLogger } from '@tidings/core';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createRabbitMqTransport } from '../src/index.ts';
import { brokerUrl, deleteTopology } from './broker.ts';
import { disposeEndpoints, pool, sleep, uniquePrefix } from './helpers.ts';

const Work = defineMessage<{ n: number }>('rmqrestart.Work');

/** Stopping the broker's application needs rabbitmqctl as root, against the local broker. */
function canRestartBroker(): boolean {
  if (process.env.RABBITMQ_URL !== undefined || process.getuid?.() !== 0) return false;
  try {
    execFileSync('rabbitmqctl', ['--version'], { stdio: 'ignore', timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

const rabbitmqctl = (...args: string[]) =>
  execFileSync('rabbitmqctl', args, { stdio: 'ignore', timeout: 60_000 });

// This disrupts the whole broker: the package's vitest config runs files one at a time.
describe.skipIf(!canRestartBroker())('rabbitmq broker restart', () => {
  const endpoints: Endpoint[] = [];
  const queues: string[] = [];
  afterEach(async () => {
    // Whatever happened, leave the broker running.
    try {
      rabbitmqctl('start_app');
      rabbitmqctl('await_startup');
    } catch {}
    await disposeEndpoints(endpoints.splice(0), queues.splice(0));
  });
  afterAll(() => deleteTopology([], [Work.name]));

  it('stop_app / start_app during a stream: every message is handled', {
    timeout: 150_000,
  }, async () => {
    const prefix = uniquePrefix('restart');
    const errorQueue = `${prefix}-error`;
    queues.push(errorQueue);
    const seen = new Map<number, number>();
    const transport = () =>
      createRabbitMqTransport({
        url: brokerUrl,
        reconnectInitialDelayMs: 100,
        reconnectMaxDelayMs: 1_000,
        unavailableTimeoutMs: 90_000,
      });
    const server = createEndpoint({
      name: `${prefix}-Server`,
      transport: transport(),
      logger: silentLogger,
      recoverability: { errorQueue },
    });
    server.handle(Work, async (p) => {
      await sleep(1);
      seen.set(p.n, (seen.get(p.n) ?? 0) + 1);
    });
    endpoints.push(server);
    await server.start();
    const sender = createEndpoint({
      name: `${prefix}-Client`,
      transport: transport(),
      logger: silentLogger,
      sendOnly: true,
      routes: { [Work.name]: `${prefix}-Server` },
      recoverability: { errorQueue },
    });
    endpoints.push(sender);
    await sender.start();

    const total = 2_000;
    let sent = 0;
    const sending = pool(total, 20, async (n) => {
      await sender.send(Work, { n });
      sent++;
      if (n % 50 === 0) await sleep(5);
    });
    await expect.poll(() => seen.size, { timeout: 30_000 }).toBeGreaterThan(300);
    const sentAtStop = sent;
    rabbitmqctl('stop_app');
    await sleep(1_000);
    rabbitmqctl('start_app');
    rabbitmqctl('await_startup');
    await sending;
    await expect.poll(() => seen.size, { timeout: 60_000, interval: 100 }).toBe(total);
    expect(sentAtStop).toBeLessThan(total);
    const duplicates = [...seen.values()].reduce((sum, times) => sum + times - 1, 0);
    console.info(`broker restart: ${total} handled, ${duplicates} duplicate deliveries`);
  });
});
