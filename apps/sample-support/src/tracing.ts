import { appendFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  CompositePropagator,
  ExportResultCode,
  hrTimeToMilliseconds,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from '@opentelemetry/core';
import {
  BasicTracerProvider,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import type { Instrumentation } from '@tidings/core';
import { createOpenTelemetry } from '@tidings/opentelemetry';

/** One finished span as the samples write it: a JSON line per span. */
interface SpanLine {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentId: string | undefined;
  readonly name: string;
  readonly process: string;
  readonly startMs: number;
  readonly durationMs: number;
  readonly error: string | undefined;
  readonly attempt: number | undefined;
}

const kindNames = ['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];

/** Where the samples' processes write their spans: `TIDINGS_TRACE_DIR`, default `.tidings/traces`. */
export function traceDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.TIDINGS_TRACE_DIR ?? join('.tidings', 'traces');
}

let registered: Instrumentation | undefined;

/**
 * `TIDINGS_TRACE=1`: registers the OpenTelemetry SDK (async context, W3C propagation) with an
 * exporter that appends each finished span to a file of this process under `traceDir()`, and
 * returns the endpoint option that turns tracing on (spread it into `createEndpoint`'s options).
 * Otherwise: nothing.
 */
export function tracingFromEnv(
  processName: string,
  env: NodeJS.ProcessEnv = process.env,
): { readonly instrumentation: Instrumentation } | Record<string, never> {
  if (env.TIDINGS_TRACE === undefined || env.TIDINGS_TRACE === '' || env.TIDINGS_TRACE === '0') {
    return {};
  }
  if (registered === undefined) {
    const dir = traceDir(env);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${processName}-${process.pid}.jsonl`);
    const exporter: SpanExporter = {
      export(spans, done) {
        appendFileSync(
          file,
          spans.map((span) => `${JSON.stringify(lineOf(span, processName))}\n`).join(''),
        );
        done({ code: ExportResultCode.SUCCESS });
      },
      shutdown: async () => {},
    };
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(
      new CompositePropagator({
        propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
      }),
    );
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    registered = createOpenTelemetry();
  }
  return { instrumentation: registered };
}

function lineOf(span: ReadableSpan, processName: string): SpanLine {
  const attempt = span.attributes['tidings.attempt'];
  const failure = span.attributes['error.type'];
  return {
    traceId: span.spanContext().traceId,
    spanId: span.spanContext().spanId,
    parentId: span.parentSpanContext?.spanId,
    name: `${span.name} ${kindNames[span.kind] ?? ''}`.trim(),
    process: processName,
    startMs: hrTimeToMilliseconds(span.startTime),
    durationMs: hrTimeToMilliseconds(span.duration),
    error: typeof failure === 'string' ? failure : undefined,
    attempt: typeof attempt === 'number' ? attempt : undefined,
  };
}

/** The spans every process wrote under `dir`, as one tree per trace, oldest first. */
export function traceTree(dir: string): string {
  let files: string[];
  try {
    files = readdirSync(dir).filter((name) => name.endsWith('.jsonl'));
  } catch {
    return '(no spans were written)';
  }
  const spans: SpanLine[] = files.flatMap((name) =>
    readFileSync(join(dir, name), 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as SpanLine),
  );
  const byId = new Map(spans.map((span) => [span.spanId, span]));
  const children = new Map<string, SpanLine[]>();
  const roots: SpanLine[] = [];
  for (const span of spans) {
    if (span.parentId !== undefined && byId.has(span.parentId)) {
      const list = children.get(span.parentId) ?? [];
      list.push(span);
      children.set(span.parentId, list);
    } else roots.push(span);
  }
  const byStart = (a: SpanLine, b: SpanLine) => a.startMs - b.startMs;
  const lines: string[] = [];
  const walk = (span: SpanLine, prefix: string, last: boolean) => {
    const notes = [
      `[${span.process}]`,
      `${span.durationMs.toFixed(1)} ms`,
      ...(span.attempt !== undefined && span.attempt > 1 ? [`attempt ${span.attempt}`] : []),
      ...(span.error !== undefined ? [`ERROR ${span.error}`] : []),
    ];
    lines.push(`${prefix}${last ? '└─' : '├─'} ${span.name}  ${notes.join('  ')}`);
    const next = (children.get(span.spanId) ?? []).sort(byStart);
    for (const [i, child] of next.entries()) {
      walk(child, `${prefix}${last ? '   ' : '│  '}`, i === next.length - 1);
    }
  };
  for (const root of roots.sort(byStart)) {
    lines.push(`trace ${root.traceId}`);
    walk(root, '', true);
  }
  return lines.join('\n');
}
