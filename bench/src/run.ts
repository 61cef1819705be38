import { type BenchRow, type BenchSuite, fastestRaw, isTidings } from './report.js';
import { azureServiceBusSuite } from './suites/azure-service-bus.js';
import { durableRequestsSuite } from './suites/durable-requests.js';
import { inMemorySuite } from './suites/in-memory.js';
import { kafkaSuite } from './suites/kafka.js';
import { learningSuite } from './suites/learning.js';
import { outboxSuite } from './suites/outbox.js';
import { rabbitMqSuite } from './suites/rabbitmq.js';
import { tracingSuite } from './suites/tracing.js';
import { webCallbackSuite } from './suites/web-callback.js';

const suites: BenchSuite[] = [
  inMemorySuite,
  learningSuite,
  rabbitMqSuite,
  kafkaSuite,
  azureServiceBusSuite,
  webCallbackSuite,
  outboxSuite,
  tracingSuite,
  durableRequestsSuite,
];

/** `npm run bench -- rabbitmq kafka` runs only those suites. */
const only = process.argv.slice(2);
const fmt = (n: number | undefined, digits = 0) =>
  n === undefined || Number.isNaN(n) ? '' : n.toFixed(digits);

/** Ratios are taken against the fastest raw row of the same scenario (`fastestRaw`). */
function print(rows: readonly BenchRow[]): void {
  console.log(
    '| scenario | impl | messages | per second | p50 ms | p99 ms | × raw rate | × raw p50 | note |',
  );
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---|');
  for (const r of rows) {
    const base = isTidings(r) ? fastestRaw(rows, r.scenario) : undefined;
    const rate =
      base && !Number.isNaN(r.perSecond) ? `${(r.perSecond / base.perSecond).toFixed(2)}×` : '';
    const p50 =
      base?.p50Ms && r.p50Ms !== undefined && base.p50Ms > 0
        ? `${(r.p50Ms / base.p50Ms).toFixed(2)}×`
        : '';
    console.log(
      `| ${r.scenario} | ${r.impl} | ${r.messages} | ${fmt(r.perSecond)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${rate} | ${p50} | ${r.note ?? ''} |`,
    );
  }
}

console.log(`Tidings benchmarks — node ${process.version}, ${new Date().toISOString()}`);
for (const suite of suites) {
  if (only.length > 0 && !only.includes(suite.name)) continue;
  const reason = await suite.unavailable?.();
  console.log(`\n### ${suite.name}\n`);
  if (reason !== undefined) {
    console.log(`skipped: ${reason}`);
    continue;
  }
  print(await suite.run());
}
