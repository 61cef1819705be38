import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Started, start, stop } from './processes.ts';

interface SpanLine {
  traceId: string;
  spanId: string;
  parentId?: string;
  name: string;
  process: string;
}

let dir: string;
let backend: Started<string>;
let web: Started<{ url: string }>;

async function spansIn(traceDir: string): Promise<SpanLine[]> {
  const files = (await readdir(traceDir)).filter((name) => name.endsWith('.jsonl'));
  const texts = await Promise.all(files.map((name) => readFile(join(traceDir, name), 'utf8')));
  return texts
    .flatMap((text) => text.split('\n'))
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as SpanLine);
}

describe('the web-callback sample with TIDINGS_TRACE=1', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tidings-web-callback-trace-'));
    const env = {
      TIDINGS_TRANSPORT: 'learning',
      TIDINGS_LEARNING_DIR: join(dir, 'bus'),
      TIDINGS_TRACE: '1',
      TIDINGS_TRACE_DIR: join(dir, 'traces'),
      PORT: '0',
    };
    backend = await start<string>('backend.js', env);
    web = await start<{ url: string }>('web.js', env);
  });

  afterAll(async () => {
    await stop(web.child);
    await stop(backend.child);
    await rm(dir, { recursive: true, force: true });
  });

  it('gives one trace from the HTTP request to the backend’s handler and back', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const response = await fetch(`${web.message.url}/api/describe`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        traceparent: `00-${traceId}-b7ad6b7169203331-01`,
      },
      body: JSON.stringify({ id: 3 }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ id: 3, text: 'Order 3: shipped' });

    const chain = [
      'POST /api/describe SERVER',
      'request Callbacks.Backend CLIENT',
      'send Callbacks.Backend PRODUCER',
      'process Callbacks.Backend CONSUMER',
      'send Callbacks.Web.web-1 PRODUCER',
      'process Callbacks.Web.web-1 CONSUMER',
    ];
    let spans: SpanLine[] = [];
    await vi.waitFor(
      async () => {
        spans = (await spansIn(join(dir, 'traces'))).filter((s) => s.traceId === traceId);
        expect(spans.map((s) => s.name).sort()).toEqual([...chain].sort());
      },
      { timeout: 10_000, interval: 50 },
    );
    // Each span is the child of the one before it, across both processes.
    const named = (name: string) => spans.find((s) => s.name === name) as SpanLine;
    expect(named(chain[0] as string).parentId).toBe('b7ad6b7169203331');
    for (let i = 1; i < chain.length; i++) {
      expect(named(chain[i] as string).parentId, chain[i]).toBe(
        named(chain[i - 1] as string).spanId,
      );
    }
    expect(named('process Callbacks.Backend CONSUMER').process).toBe('backend');
    expect(named('process Callbacks.Web.web-1 CONSUMER').process).toBe('web');
  });
});
