#!/usr/bin/env node
// Fails when a package that `npm ci` installs asks for a newer Node.js than the project supports:
// npm would warn EBADENGINE on a supported version, and the package may not work there.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const semver = require('semver');
const root = new URL('..', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
const lock = JSON.parse(readFileSync(new URL('package-lock.json', root), 'utf8'));
const lowest = semver.minVersion(manifest.engines.node).version;

const problems = [];
for (const [path, entry] of Object.entries(lock.packages)) {
  const range = typeof entry.engines === 'object' ? entry.engines?.node : undefined;
  if (!path || !range || entry.optional) continue;
  if (!semver.satisfies(lowest, range))
    problems.push(`${path}@${entry.version} wants node ${range}`);
}
if (problems.length > 0) {
  console.error(`These need a newer Node.js than ${lowest}, the oldest the project supports:`);
  for (const problem of problems) console.error(`  ${problem}`);
  console.error('Pin an older version with package.json "overrides", or raise "engines".');
  process.exit(1);
}
console.log(`engines: every installed package runs on Node.js ${lowest}`);
