#!/usr/bin/env node
// Checks every public package as the registry would serve it, before anything is published:
// the package.json fields a consumer's tools read, then the packed tarball with publint (exports,
// files) and Are the Types Wrong (types resolve under node16 and bundler resolution, ESM only).
// Runs after `npm run build` (as in `npm test`): it packs without running prepack.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => join(root, 'node_modules', '.bin', name);
const scratch = mkdtempSync(join(tmpdir(), 'tidings-check-packages-'));
const problems = [];

/** Exports that are files, not modules (a package's SQL schema): types do not apply to them. */
function notModules(manifest) {
  const files = Object.keys(manifest.exports ?? {}).filter(
    (entry) => entry !== '.' && /\.(sql|json)$/.test(entry),
  );
  return files.length > 0 ? ['--exclude-entrypoints', ...files] : [];
}

try {
  for (const name of readdirSync(join(root, 'packages')).sort()) {
    const dir = join(root, 'packages', name);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    if (manifest.private) continue;
    const where = manifest.name;
    const expect = (ok, what) => ok || problems.push(`${where}: ${what}`);
    if (!existsSync(join(dir, 'dist', 'index.js'))) {
      problems.push(`${where}: not built; run \`npm run build\` first`);
      continue;
    }
    expect(manifest.license === 'MIT', '"license" must be "MIT"');
    expect(manifest.type === 'module', '"type" must be "module"');
    expect(manifest.engines?.node === '>=20.19', '"engines.node" must be ">=20.19"');
    expect(manifest.sideEffects === false, '"sideEffects" must be false');
    expect(manifest.types === './dist/index.d.ts', '"types" must be "./dist/index.d.ts"');
    expect(manifest.files?.includes('dist'), '"files" must include "dist"');
    expect(manifest.exports?.['.']?.types === './dist/index.d.ts', 'exports["."] needs "types"');
    expect(manifest.exports?.['.']?.import === './dist/index.js', 'exports["."] needs "import"');
    expect(typeof manifest.scripts?.prepack === 'string', '"prepack" must build the package');
    expect(
      Object.keys(manifest.dependencies ?? {}).every((dep) => !dep.startsWith('@tidings/')),
      '@tidings packages are peer dependencies, not dependencies',
    );

    const packed = execFileSync(
      'npm',
      ['pack', '--ignore-scripts', '--pack-destination', scratch, '--json'],
      { cwd: dir, encoding: 'utf8' },
    );
    const tarball = join(scratch, JSON.parse(packed)[0].filename);
    for (const [tool, args] of [
      ['publint', ['run', tarball, '--strict']],
      ['attw', [tarball, '--profile', 'esm-only', '--format', 'ascii', ...notModules(manifest)]],
    ]) {
      try {
        execFileSync(bin(tool), args, { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
      } catch (error) {
        problems.push(`${where}: ${tool} failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
      }
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  process.exit(1);
}
console.log('packages: every public package packs with correct exports, types and fields');
