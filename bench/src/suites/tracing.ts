import { randomBytes } from 'node:crypto';
import { context, metrics, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  CompositePropagator,
  ExportResultCode,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from '@opentelemetry/core';
import {
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import {
  createEndpoint,
  createInMemoryTransport,
  defineMessage,
  type Endpoint,
  silentLogger,
  type Transport,
} from '@tidings/core';
import { createOpenTelemetry } from '@tidings/opentelemetry';
import { createRabbitMqTransport } from '@tidings/transport-rabbitmq';
import * as amqp from 'amqplib';
import { reachable } from '../reachable.js';
import { type BenchRow, type BenchSuite, runConcurrent, waitFor } from '../report.js';
import { sdkFloorMicros } from './tracing-floor.js';

const Order = defineMessage<{ id: number; sku: string }>('bench.Order');
const Ack = defineMessage<{ id: number }>('bench.Ack');
const Quote = defineMessage<{ id: number; sku: string }>('bench.Quote');

const url = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
/** Modes alternate this many times; each figure is the median round. */
const rounds = 3;

type Mode = 'tracing off' | 'no SDK' | 'SDK' | 'SDK, traces only' | 'SDK, metrics only';
const modes: readonly Mode[] = ['tracing off', 'no SDK', 'SDK'];
/** In-memory also splits the SDK's cost between traces and metrics. */
const inMemoryModes: readonly Mode[] = [...modes, 'SDK, traces only', 'SDK, metrics only'];

/** Takes spans and metrics and drops them: the SDK's whole cost, no I/O. */
const droppingSpanExporter: SpanExporter = {
  export: (_spans, done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: async () => {},
};
const droppingMetricExporter: PushMetricExporter = {
  export: (_metrics, done) => done({ code: ExportResultCode.SUCCESS }),
  forceFlush: async () => {},
  shutdown: async () => {},
};

/**
 * Registers the SDK globally as an application would (batch span processor, periodic metric
 * reader, async-hooks context, W3C propagation) for `run`, then unregisters it, so the other modes
 * of the same run see none.
 */
async function withMode<T>(mode: Mode, run: () => Promise<T>): Promise<T> {
  if (mode === 'tracing off' || mode === 'no SDK') return run();
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(droppingSpanExporter)],
  });
  const meterProvider = new MeterProvider({
    readers: [
      new PeriodicExportingMetricReader({
        exporter: droppingMetricExporter,
        exportIntervalMillis: 1000,
      }),
    ],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(
    new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
    }),
  );
  if (mode !== 'SDK, metrics only') trace.setGlobalTracerProvider(tracerProvider);
  if (mode !== 'SDK, traces only') metrics.setGlobalMeterProvider(meterProvider);
  try {
    return await run();
  } finally {
    trace.disable();
    metrics.disable();
    propagation.disable();
    context.disable();
    await tracerProvider.shutdown();
    await meterProvider.shutdown();
  }
}

interface Pair {
  readonly server: Endpoint;
  readonly client: Endpoint;
  readonly handled: () => number;
  readonly queues: string[];
}

async function endpoints(transport: () => Transport, mode: Mode): Promise<Pair> {
  const id = randomBytes(3).toString('hex');
  const serverName = `bench-trace-${id}`;
  const instrumentation = mode === 'tracing off' ? {} : { instrumentation: createOpenTelemetry() };
  let handled = 0;
  const server = createEndpoint({
    name: serverName,
    transport: transport(),
    logger: silentLogger,
    concurrency: 64,
    ...instrumentation,
  });
  server.handle(Order, () => {
    handled++;
  });
  server.handle(Quote, async (quote, ctx) => {
    handled++;
    await ctx.reply(Ack, { id: quote.id });
  });
  const client = createEndpoint({
    name: `${serverName}-client`,
    transport: transport(),
    logger: silentLogger,
    routes: { [Order.name]: serverName, [Quote.name]: serverName },
    maxPendingRequests: 200_000,
    ...instrumentation,
  });
  await server.start();
  await client.start();
  const queues = [serverName, `${serverName}-client`, client.instanceQueue, server.instanceQueue];
  return {
    server,
    client,
    handled: () => handled,
    queues: queues.filter((q): q is string => q !== undefined),
  };
}

interface Target {
  readonly name: string;
  readonly modes: readonly Mode[];
  readonly oneWay: number;
  /** Sends in flight at once (confirms outstanding). */
  readonly window: number;
  readonly requests: number;
  transport(): () => Transport;
  cleanup(queues: readonly string[]): Promise<void>;
}

const inMemory: Target = {
  name: 'in-memory',
  modes: inMemoryModes,
  oneWay: 100_000,
  window: 1000,
  requests: 20_000,
  transport() {
    const shared = createInMemoryTransport();
    return () => shared;
  },
  cleanup: async () => {},
};

const rabbitMq: Target = {
  name: 'rabbitmq',
  modes,
  oneWay: 10_000,
  window: 500,
  requests: 5_000,
  transport: () => () => createRabbitMqTransport({ url }),
  async cleanup(queues) {
    const connection = await amqp.connect(url, { noDelay: true });
    connection.on('error', () => {});
    try {
      for (const queue of queues) {
        const channel = await connection.createChannel();
        channel.on('error', () => {});
        await channel.deleteQueue(queue).catch(() => {});
        await channel.close().catch(() => {});
      }
    } finally {
      await connection.close().catch(() => {});
    }
  },
};

/** CPU this process spent per message since `start`, to a tenth of a µs: steadier than a rate. */
function cpuPerMessage(start: NodeJS.CpuUsage, messages: number): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / messages;
}

interface Measured extends BenchRow {
  readonly mode: Mode;
  readonly cpuMicros: number;
}

async function measure(target: Target, mode: Mode): Promise<Measured[]> {
  return withMode(mode, async () => {
    const pair = await endpoints(target.transport(), mode);
    const rows: Measured[] = [];
    try {
      let cpu = process.cpuUsage();
      const oneWay = await runConcurrent(target.oneWay, target.window, (id) =>
        pair.client.send(Order, { id, sku: 'sku-1' }),
      );
      const sentAt = performance.now() - oneWay.elapsedMs;
      await waitFor(() => pair.handled() >= target.oneWay);
      const elapsed = performance.now() - sentAt;
      rows.push({
        transport: target.name,
        scenario: 'one-way',
        impl: `tidings, ${mode}`,
        mode,
        messages: target.oneWay,
        perSecond: (target.oneWay / elapsed) * 1000,
        cpuMicros: cpuPerMessage(cpu, target.oneWay),
      });
      cpu = process.cpuUsage();
      const options = { expect: Ack } as const;
      const rr = await runConcurrent(target.requests, 100, async (id) => {
        await pair.client.request(Quote, { id, sku: 'sku-1' }, options);
      });
      rows.push({
        transport: target.name,
        scenario: 'request/reply c=100',
        impl: `tidings, ${mode}`,
        mode,
        messages: target.requests,
        perSecond: (target.requests / rr.elapsedMs) * 1000,
        p50Ms: rr.latenciesMs[Math.floor(rr.latenciesMs.length / 2)] as number,
        cpuMicros: cpuPerMessage(cpu, target.requests),
      });
    } finally {
      await pair.client.stop();
      await pair.server.stop();
      await target.cleanup(pair.queues);
    }
    return rows;
  });
}

async function runTarget(target: Target): Promise<BenchRow[]> {
  // One unmeasured round first: the engine is still compiling every path.
  const modes = target.modes;
  for (const mode of modes) await measure(target, mode);
  const all: Measured[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const mode of modes) all.push(...(await measure(target, mode)));
  }
  const rows: BenchRow[] = [];
  for (const scenario of ['one-way', 'request/reply c=100']) {
    const medians = new Map<Mode, Measured>();
    for (const mode of modes) {
      const measured = all
        .filter((r) => r.scenario === scenario && r.mode === mode)
        .sort((a, b) => a.perSecond - b.perSecond);
      const median = measured[Math.floor(measured.length / 2)];
      if (median !== undefined) medians.set(mode, median);
    }
    const off = medians.get('tracing off');
    // CPU per message: the median over the rounds, beside the median rate's round.
    const cpuOf = (mode: Mode) => {
      const cpu = all
        .filter((r) => r.scenario === scenario && r.mode === mode)
        .map((r) => r.cpuMicros)
        .sort((a, b) => a - b);
      return cpu[Math.floor(cpu.length / 2)] ?? Number.NaN;
    };
    for (const mode of modes) {
      const row = medians.get(mode);
      if (row === undefined) continue;
      const perRound = all
        .filter((r) => r.scenario === scenario && r.mode === mode)
        .map((r) => Math.round(r.perSecond))
        .join(', ');
      const cpu = cpuOf(mode);
      const ratios =
        off !== undefined && mode !== 'tracing off'
          ? `rate ${(row.perSecond / off.perSecond).toFixed(2)}×, CPU ${(cpu / cpuOf('tracing off')).toFixed(2)}× tracing off; `
          : '';
      const { mode: _mode, cpuMicros: _cpu, ...figures } = row;
      rows.push({
        ...figures,
        note: `${ratios}CPU ${cpu.toFixed(1)} µs/msg (both endpoints); rounds ${perRound}`,
      });
    }
  }
  return rows;
}

/**
 * The floor: the SDK's own work for the spans, propagation and records of one message, with no
 * Tidings code (tracing-floor.ts), the median of three rounds of each part.
 */
async function floorRows(): Promise<BenchRow[]> {
  const messages = 100_000;
  const parts: [Mode, string, boolean, boolean][] = [
    ['SDK', 'bare SDK, no Tidings', true, true],
    ['SDK, traces only', 'bare SDK, traces only', true, false],
    ['SDK, metrics only', 'bare SDK, metrics only', false, true],
  ];
  const rows: BenchRow[] = [];
  for (const [mode, impl, traces, histograms] of parts) {
    const cpu = await withMode(mode, async () =>
      [0, 1, 2].map(() => sdkFloorMicros(messages, traces, histograms)).sort((a, b) => a - b),
    );
    const median = cpu[1] as number;
    rows.push({
      transport: 'in-memory',
      // A scenario of its own: not a baseline for the Tidings rows' ratios.
      scenario: 'one-way, the SDK alone (floor)',
      impl,
      messages,
      perSecond: 1e6 / median,
      note: `CPU ${median.toFixed(1)} µs/msg; rounds ${cpu.map((c) => c.toFixed(1)).join(', ')} µs; rate: one core doing only this`,
    });
  }
  return rows;
}

/**
 * What tracing costs: Tidings with no instrumentation, with `createOpenTelemetry()` and no SDK
 * registered, and with the SDK registered (batch span processor, periodic metric reader, exporters
 * that drop), alternating in the same run; both endpoints in this process.
 */
export const tracingSuite: BenchSuite = {
  name: 'tracing',
  async run() {
    const rows = await runTarget(inMemory);
    rows.push(...(await floorRows()));
    if (await reachable(url, 5672)) rows.push(...(await runTarget(rabbitMq)));
    else console.log(`rabbitmq skipped: no broker at ${new URL(url).host} (set RABBITMQ_URL)`);
    return rows;
  },
};
