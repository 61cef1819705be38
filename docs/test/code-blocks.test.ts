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
}

function blocksOf(source: string, text: string): Block[] {
  const blocks: Block[] = [];
  const fence = /^```(ts|typescript)\s*$([\s\S]*?)^```\s*$/gm;
  for (const match of text.matchAll(fence)) {
    const line = text.slice(0, match.index).split('\n').length;
    blocks.push({ source, line, code: match[2] ?? '' });
  }
  return blocks;
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
      const name = join(scratch, `${block.source.replace(/[^A-Za-z0-9]+/g, '-')}-${index}.ts`);
      // Each block is its own module (top-level await, no clashes between blocks).
      await writeFile(name, `${block.code}\nexport {};\n`);
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
