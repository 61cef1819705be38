#!/usr/bin/env node
// Fails when a transport package leaves the layout every transport shares (docs/writing-a-transport.md,
// "Package layout"), so that a maintainer who knows one transport finds their way in every other.
// A transport package is any packages/transport-* but the shared test suite.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const packagesDir = fileURLToPath(new URL('../packages', import.meta.url));
/** Beyond this a file wants splitting along the layout; the broker-specific files included. */
const MAX_LINES = 500;

const problems = [];
const checked = [];
for (const dir of readdirSync(packagesDir)) {
  if (!dir.startsWith('transport-') || dir === 'transport-tests') continue;
  const stem = dir.slice('transport-'.length);
  const src = join(packagesDir, dir, 'src');
  const fail = (what) => problems.push(`packages/${dir}: ${what}`);
  const read = (file) =>
    existsSync(join(src, file)) ? readFileSync(join(src, file), 'utf8') : undefined;

  const required = [
    'index.ts',
    `${stem}-transport.ts`,
    `${stem}-endpoint.ts`,
    'receiver.ts',
    'sender.ts',
    'errors.ts',
    'options.ts',
    `${stem}-headers.ts`,
  ];
  for (const file of required) if (read(file) === undefined) fail(`src/${file} is missing`);

  // The name every export is built on comes from the factory: createRabbitMqTransport → RabbitMq.
  const factory = /export function create(\w+)Transport\b/.exec(read(`${stem}-transport.ts`) ?? '');
  if (factory === null) {
    fail(`src/${stem}-transport.ts must export function create<Name>Transport`);
    continue;
  }
  const name = factory[1];
  const lower = name[0].toLowerCase() + name.slice(1);
  const index = read('index.ts') ?? '';
  for (const exported of [
    `create${name}Transport`,
    `${lower}TransportDefaults`,
    `map${name}Error`,
    `${name}TransportOptions`,
  ]) {
    if (!new RegExp(`\\b${exported}\\b`).test(index)) fail(`src/index.ts must export ${exported}`);
  }
  if (!new RegExp(`export function resolve${name}Options\\b`).test(read('options.ts') ?? '')) {
    fail(`src/options.ts must export function resolve${name}Options (defaults and checks)`);
  }
  if (!/\bmapNativeError\b/.test(read('errors.ts') ?? '')) {
    fail(
      "src/errors.ts must build map<Name>Error on mapNativeError from '@tidings/core/transport'",
    );
  }
  if (!/\bQueueSlots\b/.test(read('receiver.ts') ?? '')) {
    fail("src/receiver.ts must bound each queue with QueueSlots from '@tidings/core/transport'");
  }
  if (!new RegExp(`export class ${name}Endpoint\\b`).test(read(`${stem}-endpoint.ts`) ?? '')) {
    fail(`src/${stem}-endpoint.ts must export class ${name}Endpoint`);
  }
  for (const file of readdirSync(src)) {
    if (!file.endsWith('.ts')) continue;
    const lines = (read(file) ?? '').split('\n').length;
    if (lines > MAX_LINES) fail(`src/${file} has ${lines} lines (at most ${MAX_LINES}): split it`);
  }
  checked.push(dir);
}

if (problems.length > 0) {
  console.error('Transport packages must share one layout (docs/writing-a-transport.md):');
  for (const problem of problems) console.error(`  ${problem}`);
  process.exit(1);
}
console.log(`transports: ${checked.join(', ')} share the layout`);
