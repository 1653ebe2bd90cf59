/**
 * The layer rules (.dependency-cruiser.cjs) hold on host/src — `npm test` runs the same check before the
 * suites — and they do bite: on a small tree with an upward import and a cycle, the check fails naming both.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers.js';
import { ROOT } from './paths.js';

const DEPCRUISE = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

function cruise(cwd: string): { code: number; out: string } {
  const run = spawnSync(process.execPath, [DEPCRUISE, 'host/src', '--config', join(ROOT, '.dependency-cruiser.cjs')], { cwd, encoding: 'utf8' });
  return { code: run.status ?? -1, out: run.stdout + run.stderr };
}

describe('the layer rules', () => {
  it('pass on host/src: no cycle, no upward import, every module in a layer', () => {
    const { code, out } = cruise(ROOT);
    expect(out).toContain('no dependency violations found');
    expect(code).toBe(0);
  }, 60_000);

  it('fail a tree with an upward import, a cycle and a module outside every layer, naming each', () => {
    const dir = tempDir('ice-layers-');
    const file = (path: string, text: string) => {
      mkdirSync(join(dir, path, '..'), { recursive: true });
      writeFileSync(join(dir, path), text);
    };
    copyFileSync(join(ROOT, 'tsconfig.json'), join(dir, 'tsconfig.json'));
    file('host/src/core/text.ts', "import { kernel } from '../kernel/kernel.js';\nexport const text = kernel;\n");
    file('host/src/kernel/kernel.ts', 'export const kernel = 1;\n');
    file('host/src/ledger/a.ts', "import { b } from './b.js';\nexport const a = b;\n");
    file('host/src/ledger/b.ts', "import { a } from './a.js';\nexport const b = () => a;\n");
    file('host/src/stray/loose.ts', "import { kernel } from '../kernel/kernel.js';\nexport const loose = kernel;\n");
    const { code, out } = cruise(dir);
    expect(code).not.toBe(0);
    expect(out).toContain('core-imports-upward: host/src/core/text.ts → host/src/kernel/kernel.ts');
    expect(out).toMatch(/no-circular: host\/src\/ledger\/[ab]\.ts → /u);
    expect(out).toContain('unlayered-module: host/src/stray/loose.ts');
  }, 60_000);
});
