import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dist, type Started, start, stop } from './processes.ts';

const artifacts = fileURLToPath(new URL('../test-results/', import.meta.url));
const timeoutMs = 1000;

let dir: string;
let backend: Started<string>;
let web: Started<{ url: string }>;
let url: string;
const children: ChildProcess[] = [];

const post = (path: string, body: unknown) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

describe('the web-callback sample: backend and web server as two processes on the learning transport', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tidings-web-callback-'));
    const env = {
      TIDINGS_TRANSPORT: 'learning',
      TIDINGS_LEARNING_DIR: join(dir, 'bus'),
      WEB_TIMEOUT_MS: String(timeoutMs),
      PORT: '0',
    };
    backend = await start<string>('backend.js', env);
    children.push(backend.child);
    web = await start<{ url: string }>('web.js', env);
    children.push(web.child);
    url = web.message.url;
  });

  afterAll(async () => {
    for (const child of children) await stop(child);
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the page to a real browser: both forms show the reply when it arrives', async () => {
    const profile = join(dir, 'chromium-profile');
    let context: BrowserContext | undefined;
    try {
      context = await chromium.launchPersistentContext(profile, {
        executablePath: '/usr/bin/chromium',
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
      });
      const page = await context.newPage();
      await page.goto(url);
      expect(await page.title()).toBe('Tidings web callback');

      const result = page.locator('#process-result');
      await page.fill('#process-id', '3');
      await page.click('#process-form button');
      await result.filter({ hasText: 'order 3:' }).waitFor();
      expect(await result.textContent()).toBe('order 3: None (code 0)');
      await page.fill('#process-id', '4');
      await page.click('#process-form button');
      await result.filter({ hasText: 'order 4:' }).waitFor();
      expect(await result.textContent()).toBe('order 4: Fail (code 1)');

      const description = page.locator('#describe-result');
      await page.fill('#describe-id', '5');
      await page.click('#describe-form button');
      await description.filter({ hasText: 'Order 5' }).waitFor();
      expect(await description.textContent()).toBe('Order 5: shipped');

      await mkdir(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, 'web-callback.png'), fullPage: true });
    } finally {
      await context?.close();
    }
  });

  it('answers the JSON API with the return code and with the reply message', async () => {
    expect(await (await post('/api/process', { id: 7 })).json()).toEqual({
      id: 7,
      code: 0,
      result: 'None',
    });
    expect(await (await post('/api/process', { id: 8 })).json()).toEqual({
      id: 8,
      code: 1,
      result: 'Fail',
    });
    expect(await (await post('/api/describe', { id: 8 })).json()).toEqual({
      id: 8,
      text: 'Order 8: on hold',
    });
    const invalid = await post('/api/process', { id: 'x' });
    expect(invalid.status).toBe(400);
  });

  it('with the backend stopped, answers 504 after the timeout and keeps no pending request', async () => {
    expect(await stop(backend.child)).toBe(0);
    const [processed, described] = await Promise.all([
      post('/api/process', { id: 11 }),
      post('/api/describe', { id: 12 }),
    ]);
    expect(processed.status).toBe(504);
    expect(await processed.json()).toMatchObject({ code: 'TIDINGS_REQUEST_TIMEOUT' });
    expect(described.status).toBe(504);
    const stats = (await (await fetch(`${url}/api/stats`)).json()) as { pendingRequests: number };
    expect(stats.pendingRequests).toBe(0);
    // The page's own route still answers: only the bus calls wait.
    expect(await (await fetch(`${url}/ping`)).json()).toEqual({ pong: true });
  });
});

describe('npm start', () => {
  it('launches both processes, serves the API, and stops both on SIGTERM', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'tidings-web-callback-start-'));
    const launcher = spawn(process.execPath, [dist('start.js')], {
      cwd,
      env: { ...process.env, TIDINGS_TRANSPORT: 'learning', PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(launcher);
    let output = '';
    launcher.stdout.on('data', (chunk) => {
      output += chunk;
    });
    launcher.stderr.on('data', (chunk) => {
      output += chunk;
    });
    try {
      const opened = await new Promise<string>((resolve, reject) => {
        launcher.stdout.on('data', () => {
          const match = /\[start\] open (\S+)/.exec(output);
          if (match?.[1]) resolve(match[1]);
        });
        launcher.once('exit', (code) => reject(new Error(`start exited (${code}):\n${output}`)));
      });
      const response = await fetch(`${opened}/api/describe`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: 1 }),
      });
      expect(await response.json()).toEqual({ id: 1, text: 'Order 1: shipped' });
      expect(await stop(launcher)).toBe(0);
      expect(output).toContain('[start] stopped');
    } finally {
      await stop(launcher);
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
