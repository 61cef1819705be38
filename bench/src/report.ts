/** One measured figure set: Tidings or the raw client, one scenario on one transport. */
export interface BenchRow {
  /** e.g. `in-memory`, `rabbitmq`, `kafka (mock cluster)`. */
  readonly transport: string;
  /** e.g. `one-way`, `request/reply c=1`, `request/reply c=100`. */
  readonly scenario: string;
  /** `tidings`, or the baseline it is compared with (`raw amqplib`, `raw kafkajs`, ...). */
  readonly impl: string;
  readonly messages: number;
  /** Messages (one-way) or round trips (request/reply) per second. */
  readonly perSecond: number;
  readonly p50Ms?: number;
  readonly p99Ms?: number;
  /** Anything else worth printing (e.g. heap bytes per pending request). */
  readonly note?: string;
}

/** A benchmark suite for one transport: runs Tidings and the raw baseline in the same process run. */
export interface BenchSuite {
  readonly name: string;
  /** Returns why the suite cannot run here (missing broker), or undefined to run it. */
  unavailable?(): Promise<string | undefined>;
  run(): Promise<BenchRow[]>;
}

export function percentile(sortedMs: readonly number[], p: number): number {
  if (sortedMs.length === 0) return Number.NaN;
  const index = Math.min(sortedMs.length - 1, Math.floor((p / 100) * sortedMs.length));
  return sortedMs[index] as number;
}

/** Runs `task` `total` times with at most `concurrency` at once; returns elapsed ms and latencies. */
export async function runConcurrent(
  total: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<{ elapsedMs: number; latenciesMs: number[] }> {
  const latenciesMs: number[] = new Array(total);
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < total) {
      const index = next++;
      const t0 = performance.now();
      await task(index);
      latenciesMs[index] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  const elapsedMs = performance.now() - started;
  latenciesMs.sort((a, b) => a - b);
  return { elapsedMs, latenciesMs };
}

/** Builds rows for one transport from a measured run: throughput, plus percentiles when latencies were taken. */
export function rowFor(transport: string) {
  return (
    scenario: string,
    impl: string,
    messages: number,
    elapsedMs: number,
    latenciesMs?: number[],
  ): BenchRow => ({
    transport,
    scenario,
    impl,
    messages,
    perSecond: (messages / elapsedMs) * 1000,
    ...(latenciesMs
      ? { p50Ms: percentile(latenciesMs, 50), p99Ms: percentile(latenciesMs, 99) }
      : {}),
  });
}

/**
 * This process's CPU time since `start`, per message, as a row note: steadier than a rate on a
 * shared machine, and it shows where a ratio comes from. `whose` says what runs in the process.
 */
export function cpuNote(start: NodeJS.CpuUsage, messages: number, whose: string): string {
  const used = process.cpuUsage(start);
  return `${whose} CPU ${Math.round((used.user + used.system) / messages)} µs/msg`;
}

/** Polls until `condition` holds; a benchmark that stalls fails instead of hanging. */
export async function waitFor(condition: () => boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('benchmark timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/**
 * Runs a suite's scenarios `rounds` times, raw and Tidings alternating within each round, and
 * keeps for each row the round with the median throughput: shared machines are noisy, and one
 * slow moment should not decide a ratio. The note lists every round, and for Tidings rows the
 * ratio to the fastest raw row of the same round: raw and Tidings run back to back there, so a
 * machine that slows down for a while moves both. A first round runs unmeasured: in it the
 * JavaScript engine is still compiling every path, the raw ones first, since they run first.
 */
export async function medianOfRounds(
  rounds: number,
  runRound: () => Promise<BenchRow[]>,
): Promise<BenchRow[]> {
  await runRound();
  const all: BenchRow[][] = [];
  for (let round = 0; round < rounds; round++) all.push(await runRound());
  return (all[0] ?? []).map((first, i) => {
    const measured = all
      .map((rows) => rows[i])
      .filter((row): row is BenchRow => row !== undefined)
      .sort((a, b) => a.perSecond - b.perSecond);
    const median = measured[Math.floor(measured.length / 2)] as BenchRow;
    const perRound = measured.map((row) => Math.round(row.perSecond)).join(', ');
    const paired = isTidings(first) ? pairedRatios(all, i) : [];
    const pairedNote =
      paired.length > 0
        ? `per-round ratio ${paired.map((r) => r.toFixed(2)).join(', ')} (median ${(paired[Math.floor(paired.length / 2)] as number).toFixed(2)}×)`
        : undefined;
    return {
      ...median,
      note: [`median of ${measured.length} rounds (${perRound}/s)`, pairedNote, median.note]
        .filter(Boolean)
        .join('; '),
    };
  });
}

/** A Tidings row (`tidings`, or a variant such as `tidings, express request`), not a baseline. */
export const isTidings = (row: BenchRow): boolean => row.impl.startsWith('tidings');

/**
 * The fastest raw (non-Tidings) row of a scenario: the baseline ratios are taken against (the plain
 * raw client; a baseline carrying bus-shaped headers is there for context).
 */
export function fastestRaw(rows: readonly BenchRow[], scenario: string): BenchRow | undefined {
  let fastest: BenchRow | undefined;
  for (const row of rows) {
    if (isTidings(row) || row.scenario !== scenario || Number.isNaN(row.perSecond)) continue;
    if (fastest === undefined || row.perSecond > fastest.perSecond) fastest = row;
  }
  return fastest;
}

/** Row `i` (Tidings) over the fastest raw row of its scenario, round by round, sorted. */
function pairedRatios(all: readonly BenchRow[][], i: number): number[] {
  const ratios: number[] = [];
  for (const rows of all) {
    const tidings = rows[i];
    const base = tidings && fastestRaw(rows, tidings.scenario);
    if (tidings !== undefined && base !== undefined)
      ratios.push(tidings.perSecond / base.perSecond);
  }
  return ratios.sort((a, b) => a - b);
}

/** One block's measurement, taken where the block ran. */
export interface BlockResult {
  readonly elapsedMs: number;
  /** CPU time of the process that ran the block (µs). */
  readonly cpuMicros: number;
  /** The operations' latencies, where the scenario takes them. */
  readonly latenciesMs?: number[] | undefined;
}

/** Runs one block in this process and measures it. */
export async function measureBlock(
  block: () => Promise<number[] | undefined>,
): Promise<BlockResult> {
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  const latenciesMs = await block();
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  return { elapsedMs, cpuMicros: cpu.user + cpu.system, latenciesMs };
}

/** One side of an interleaved comparison (`interleavedBlocks`), open for the whole scenario. */
export interface Contestant {
  readonly impl: string;
  /** Runs one block: `count` operations numbered from `first`, done when the last one is. */
  runBlock(first: number, count: number): Promise<BlockResult>;
}

export interface InterleaveOptions {
  readonly scenario: string;
  /** Measured blocks per contestant. */
  readonly blocks: number;
  readonly blockSize: number;
  /** Blocks per contestant run first, unmeasured: the engine compiles every path in them. */
  readonly warmUpBlocks?: number;
  /** What runs where the blocks are measured, for the CPU note. */
  readonly whose: string;
  /** CPU time (µs) of another process that serves every contestant, e.g. a broker stand-in. */
  readonly other?: { readonly name: string; cpuMicros(): Promise<number> };
}

/**
 * Runs contestants that are all open at once block by block, each block of each in turn (the
 * order reversed every other turn, so none always runs after the same one), and adds up each
 * one's blocks. A shared machine's speed moves by half within seconds; blocks a fraction of a
 * second long, side by side, see the same machine, where whole rounds one after another do not.
 * Fit for clients that cost nothing while idle (an idle Kafka consumer keeps fetching, so Kafka
 * runs rounds instead). Each row notes the per-block ratio to the first contestant, the plain raw
 * client by convention.
 */
export async function interleavedBlocks(
  rowOf: ReturnType<typeof rowFor>,
  contestants: readonly Contestant[],
  options: InterleaveOptions,
): Promise<BenchRow[]> {
  const { scenario, blocks, blockSize } = options;
  const next = contestants.map(() => 0);
  const runOne = (i: number) => {
    const first = next[i] as number;
    next[i] = first + blockSize;
    return (contestants[i] as Contestant).runBlock(first, blockSize);
  };
  for (let w = 0; w < (options.warmUpBlocks ?? 2); w++) {
    for (let i = 0; i < contestants.length; i++) await runOne(i);
  }
  const measured = contestants.map(() => ({
    elapsedMs: 0,
    cpuMicros: 0,
    otherMicros: 0,
    latenciesMs: [] as number[],
    blockMs: [] as number[],
  }));
  const order = contestants.map((_, i) => i);
  for (let b = 0; b < blocks; b++) {
    for (const i of b % 2 === 0 ? order : [...order].reverse()) {
      const m = measured[i] as (typeof measured)[number];
      const otherStart = (await options.other?.cpuMicros()) ?? 0;
      const result = await runOne(i);
      if (options.other) m.otherMicros += (await options.other.cpuMicros()) - otherStart;
      m.cpuMicros += result.cpuMicros;
      m.elapsedMs += result.elapsedMs;
      m.blockMs.push(result.elapsedMs);
      if (result.latenciesMs) m.latenciesMs.push(...result.latenciesMs);
    }
  }
  const base = measured[0];
  const messages = blocks * blockSize;
  return contestants.map((contestant, i) => {
    const m = measured[i] as (typeof measured)[number];
    m.latenciesMs.sort((x, y) => x - y);
    const ratios =
      i === 0 || base === undefined
        ? []
        : m.blockMs.map((ms, b) => (base.blockMs[b] as number) / ms).sort((x, y) => x - y);
    const at = (q: number) => (ratios[Math.floor(q * ratios.length)] as number).toFixed(2);
    const note = [
      `${blocks} blocks of ${blockSize}, interleaved`,
      ratios.length > 0
        ? `per-block ratio to '${contestants[0]?.impl}': median ${at(0.5)}, middle half ${at(0.25)}–${at(0.75)}`
        : undefined,
      `${options.whose} CPU ${Math.round(m.cpuMicros / messages)} µs/msg`,
      options.other
        ? `${options.other.name} ${Math.round(m.otherMicros / messages)} µs/msg`
        : undefined,
    ]
      .filter(Boolean)
      .join('; ');
    return {
      ...rowOf(
        scenario,
        contestant.impl,
        messages,
        m.elapsedMs,
        m.latenciesMs.length > 0 ? m.latenciesMs : undefined,
      ),
      note,
    };
  });
}
