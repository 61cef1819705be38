import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Follows docs/getting-started.md section 3 literally, outside the workspace, from packed tarballs
// (as a user would install published packages), on every supported major version of Node.js.
const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const guide = await readFile(join(root, 'docs', 'getting-started.md'), 'utf8');
const section = guide.slice(guide.indexOf('## 3. Your first endpoint'));

/** The guide's shell block that sets the project up, with the tarballs in place of the names. */
function setupScript(tarballs: readonly string[]): string {
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (block === undefined) throw new Error('getting-started.md lost its setup block');
  return block
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, ''))
    .map((line) =>
      line.replace(/@tidings\/([\w-]+)/g, (name, short: string) => {
        const file = tarballs.find((path) => path.endsWith(`/tidings-${short}-0.0.0.tgz`));
        if (file === undefined) throw new Error(`no tarball for ${name}`);
        return file;
      }),
    )
    .join('\n');
}

/** The guide's `<!-- file: x.ts -->` blocks. */
function guideFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const match of section.matchAll(/<!-- file: ([\w.-]+) -->\n```ts\n([\s\S]*?)```/g)) {
    files.set(match[1] as string, match[2] as string);
  }
  return files;
}

function waitForLine(child: ChildProcess, text: string, output: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output.push(chunk.toString());
      if (output.join('').includes(text)) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    child.once('exit', (code) =>
      reject(new Error(`exited (${code}) before "${text}": ${output.join('')}`)),
    );
  });
}

let scratch = '';
let project = '';
let tarballs: string[] = [];

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'tidings-first-run-'));
  const packs = join(scratch, 'packages');
  const { stdout } = await run('node', [join(root, 'scripts', 'pack-packages.mjs'), packs], {
    cwd: root,
    maxBuffer: 16 * 1024 * 1024,
  });
  tarballs = stdout
    .trim()
    .split('\n')
    .filter((line) => line.endsWith('.tgz'));
  await run('bash', ['-euo', 'pipefail', '-c', setupScript(tarballs)], {
    cwd: scratch,
    maxBuffer: 16 * 1024 * 1024,
  });
  project = join(scratch, 'tidings-start');
  const files = guideFiles();
  expect([...files.keys()]).toEqual(['messages.ts', 'sales.ts', 'web.ts']);
  for (const [name, code] of files) await writeFile(join(project, name), code);
}, 300_000);

afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('getting started, followed literally in a fresh project', () => {
  it('has the package.json the guide asks for', async () => {
    const manifest = JSON.parse(await readFile(join(project, 'package.json'), 'utf8'));
    expect(manifest.type).toBe('module');
    expect(Object.keys(manifest.dependencies)).toEqual(
      expect.arrayContaining(['@tidings/core', '@tidings/transport-learning']),
    );
  });

  for (const major of ['20', '22', '24']) {
    it(`runs the server and the client on Node.js ${major}`, async () => {
      const node = process.version.startsWith(`v${major}.`)
        ? process.execPath
        : (
            await run('npx', ['-y', `node@${major}`, '-p', 'process.execPath'], {
              cwd: scratch,
            })
          ).stdout.trim();
      const { stdout: version } = await run(node, ['--version']);
      expect(version).toMatch(new RegExp(`^v${major}\\.`));

      const tsx = join(project, 'node_modules', 'tsx', 'dist', 'cli.mjs');
      await rm(join(project, '.tidings'), { recursive: true, force: true });
      const sales = spawn(node, [tsx, 'sales.ts'], { cwd: project });
      const salesOutput: string[] = [];
      const exited = new Promise<number | null>((resolve) => sales.once('exit', resolve));
      try {
        await waitForLine(sales, 'Sales: ready', salesOutput);
        const { stdout } = await run(node, [tsx, 'web.ts'], { cwd: project, timeout: 60_000 });
        expect(stdout).toContain('Web: order o-1 accepted');
        expect(salesOutput.join('')).toContain('Sales: order o-1 for 5');
      } finally {
        sales.kill('SIGTERM');
      }
      // SIGTERM stops the endpoint, and a stopped endpoint lets the process exit by itself.
      expect(await exited).toBe(0);
    }, 180_000);
  }
});

describe('every public package, installed from its tarball', () => {
  it('resolves with types under node16 and bundler resolution', async () => {
    const dir = join(scratch, 'all-packages');
    const names = tarballs.map(
      (file) => /^tidings-(.+)-0\.0\.0\.tgz$/.exec(basename(file))?.[1] as string,
    );
    expect(names).toContain('core');
    await run(
      'bash',
      [
        '-euo',
        'pipefail',
        '-c',
        // The peers some packages name (fastify, vitest, pg, @opentelemetry/api), as a user of those packages has them.
        `mkdir all-packages && cd all-packages && npm init -y >/dev/null && npm pkg set type=module && npm install --no-audit --no-fund ${tarballs.join(' ')} fastify@5 vitest@4 pg @opentelemetry/api typescript @types/node@20 >/dev/null`,
      ],
      { cwd: scratch, maxBuffer: 16 * 1024 * 1024 },
    );
    // Each package's root entry, and core's entry for transport authors.
    const specifiers = [...names.map((name) => `@tidings/${name}`), '@tidings/core/transport'];
    const imports = specifiers.map(
      (specifier, index) => `import * as p${index} from '${specifier}';`,
    );
    await writeFile(
      join(dir, 'check.ts'),
      `${imports.join('\n')}\nexport const all = [${specifiers.map((_, i) => `p${i}`).join(', ')}];\n`,
    );
    const tsc = join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
    for (const [module, resolution] of [
      ['node16', 'node16'],
      ['esnext', 'bundler'],
    ]) {
      const result = await run(
        process.execPath,
        [
          tsc,
          '--noEmit',
          '--strict',
          '--module',
          module,
          '--moduleResolution',
          resolution,
          '--target',
          'es2022',
          '--types',
          'node',
          'check.ts',
        ],
        { cwd: dir },
      ).catch((error: { stdout: string }) => ({ stdout: error.stdout, failed: true }));
      expect(result.stdout, `${module}/${resolution}`).toBe('');
    }
  }, 300_000);
});
