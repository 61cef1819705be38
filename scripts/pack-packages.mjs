#!/usr/bin/env node
// Packs every public workspace package into one folder, as the registry would serve them, so the
// packages can be installed outside this repository: `npm install <folder>/tidings-core-0.0.0.tgz`.
// Each package's `prepack` builds it (and what it depends on) first.
// Usage: node scripts/pack-packages.mjs [destination]   (default: dist-packages/)
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const destination = resolve(process.argv[2] ?? join(root, 'dist-packages'));
mkdirSync(destination, { recursive: true });

const packed = [];
for (const name of readdirSync(join(root, 'packages')).sort()) {
  const manifest = JSON.parse(readFileSync(join(root, 'packages', name, 'package.json'), 'utf8'));
  if (manifest.private) continue;
  const output = execFileSync(
    'npm',
    ['pack', '--workspace', `packages/${name}`, '--pack-destination', destination, '--json'],
    { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  // npm prints the prepack script's output before the JSON report.
  const report = JSON.parse(output.slice(output.search(/^\[$/m)));
  for (const { filename, files } of report) {
    if (!files.some((file) => file.path === 'dist/index.js')) {
      throw new Error(`${filename} has no dist/index.js: the build did not run`);
    }
    packed.push(join(destination, filename));
  }
}
for (const file of packed) console.log(file);
