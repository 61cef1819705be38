import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const scratch = join(root, 'docs', '.blocks');

async function markdownFiles(): Promise<string[]> {
  const files = [join(root, 'README.md')];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name.endsWith('.md')) files.push(path);
    }
  };
  await walk(join(root, 'docs'));
  for (const group of ['packages', 'apps']) {
    for (const name of await readdir(join(root, group))) {
      const readme = join(root, group, name, 'README.md');
      if (
        await readFile(readme).then(
          () => true,
          () => false,
        )
      )
        files.push(readme);
    }
  }
  return files;
}

interface Block {
  readonly source: string;
  readonly line: number;
  readonly code: string;
  /** Set by a `<!-- file: name.ts -->` line before the block: blocks that import each other by path. */
  readonly fileName?: string;
}

const fileMarker = /<!-- file: ([\w.-]+\.ts) -->\s*$/;

/**
 * A page whose examples build on each other says so with this marker: its blocks then compile as
 * one module, in order. Otherwise every block stands alone.
 */
const oneModuleMarker = '<!-- docs-check: one-module -->';

function blocksOf(source: string, text: string): Block[] {
  const blocks: Block[] = [];
  const fence = /^```(ts|typescript)\s*$([\s\S]*?)^```\s*$/gm;
  for (const match of text.matchAll(fence)) {
    const before = text.slice(0, match.index);
    const line = before.split('\n').length;
    const fileName = fileMarker.exec(before)?.[1];
    blocks.push({ source, line, code: match[2] ?? '', ...(fileName ? { fileName } : {}) });
  }
  if (!text.includes(oneModuleMarker) || blocks.length < 2) return blocks;
  // One module: imports first, then every block's body, each line mapped back to its block.
  const imports: string[] = [];
  const body: string[] = [];
  for (const block of blocks) {
    for (const line of block.code.split('\n')) {
      (/^import\s/.test(line) ? imports : body).push(line);
    }
  }
  return [
    { source, line: blocks[0]?.line ?? 0, code: [...mergeImports(imports), ...body].join('\n') },
  ];
}

/** Merges `import { a, type B } from 'x'` lines by module, so blocks may import the same names. */
function mergeImports(lines: readonly string[]): string[] {
  const named = new Map<string, Set<string>>();
  const other = new Set<string>();
  for (const line of lines) {
    const match = /^import\s+\{([^}]*)\}\s+from\s+('[^']+');?\s*$/.exec(line);
    if (match === null) {
      other.add(line);
      continue;
    }
    const names = named.get(match[2] as string) ?? new Set<string>();
    for (const name of (match[1] as string).split(',')) if (name.trim()) names.add(name.trim());
    named.set(match[2] as string, names);
  }
  return [
    ...[...named].map(([from, names]) => `import { ${[...names].join(', ')} } from ${from};`),
    ...other,
  ];
}

/** Examples written as tests use vitest's `expect` without importing it. */
function withTestGlobals(code: string): string {
  return /\bexpect\(/.test(code) && !/from 'vitest'/.test(code)
    ? `import { expect } from 'vitest';\n${code}`
    : code;
}

describe('documentation code blocks', () => {
  it('every TypeScript block in docs/ and the READMEs compiles against the packages', async () => {
    const blocks: Block[] = [];
    for (const file of await markdownFiles()) {
      blocks.push(...blocksOf(relative(root, file), await readFile(file, 'utf8')));
    }
    expect(blocks.length).toBeGreaterThan(10);

    await rm(scratch, { recursive: true, force: true });
    await mkdir(scratch, { recursive: true });
    const origin = new Map<string, Block>();
    const fileNames: string[] = [];
    for (const [index, block] of blocks.entries()) {
      const slug = block.source.replace(/[^A-Za-z0-9]+/g, '-');
      // Named blocks share a folder per page, so their relative imports resolve.
      const name = block.fileName
        ? join(scratch, slug, block.fileName)
        : join(scratch, `${slug}-${index}.ts`);
      await mkdir(dirname(name), { recursive: true });
      // Each block is its own module (top-level await, no clashes between blocks).
      await writeFile(name, `${withTestGlobals(block.code)}\nexport {};\n`);
      origin.set(name, block);
      fileNames.push(name);
    }
    const base = ts.readConfigFile(join(root, 'tsconfig.base.json'), ts.sys.readFile).config;
    const { options } = ts.convertCompilerOptionsFromJson(
      { ...base.compilerOptions, noEmit: true, noUnusedLocals: false },
      root,
    );
    const program = ts.createProgram(fileNames, options);
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file && origin.has(d.file.fileName))
      .map((d) => {
        const block = origin.get(d.file?.fileName ?? '') as Block;
        const { line } = d.file?.getLineAndCharacterOfPosition(d.start ?? 0) ?? { line: 0 };
        return `${block.source}:${block.line + line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
    expect(problems).toEqual([]);
    await rm(scratch, { recursive: true, force: true });
    expect(dirname(scratch)).toContain('docs');
  }, 120_000);
});
