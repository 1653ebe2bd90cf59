/**
 * Load-time and instantiation bounds against crafted components (written as component text, turned into
 * binaries with jco's `parse`): memory over limits.memoryMiB summed across core instances, more core
 * instances than the host allows, oversized files, deep nesting. Each is refused with a LoadError naming
 * the problem and the fix, and leaves nothing in the component cache.
 */
import { parse } from '@bytecodealliance/jco';
import { existsSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoadError, type Host } from '../host/src/index.js';
import { freshHost, ice, tempDir, writePolicy } from './helpers.js';

/** A component exporting `run` (answering ok "ok") whose one core module is instantiated `instances` times with `pages` of memory each. */
async function manyInstances(instances: number, pages: number, extra = ''): Promise<Uint8Array> {
  const created = Array.from({ length: instances }, (_, i) => `(core instance $i${i} (instantiate $m))`).join('\n');
  return parse(`(component
    (core module $m
      (memory (export "memory") ${pages})
      ${extra}
      (func (export "run") (param i32 i32) (result i32) (i32.const 16))
      (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
      (data (i32.const 16) "\\00\\00\\00\\00\\20\\00\\00\\00\\02\\00\\00\\00")
      (data (i32.const 32) "ok"))
    ${created}
    (func (export "run") (param "input" string) (result (result string (error string)))
      (canon lift (core func $i0 "run") (memory (core memory $i0 "memory")) (realloc (core func $i0 "realloc")))))`);
}

const policy = (limits = '{}') => writePolicy(`version: 1\ncomponent: crafted\nlimits: ${limits}\ngrants: {}\n`);

async function refusal(host: Host, component: Uint8Array | string, policyFile = policy()): Promise<LoadError> {
  const error = await host.load(component, policyFile).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LoadError);
  return error as LoadError;
}

describe('load-time and instantiation bounds (crafted components)', () => {
  let host: Host;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    ({ host } = await freshHost(dir, { cacheDir: join(dir, 'cache') }));
  });
  afterAll(() => host.close());
  const cacheEntries = () => (existsSync(join(dir, 'cache')) ? readdirSync(join(dir, 'cache')).filter((name) => !name.startsWith('.')) : []);

  it('runs a component with several core instances inside the budget', async () => {
    const result = await (await host.load(await manyInstances(3, 16), policy())).run('x');
    expect(result).toMatchObject({ ok: true, output: 'ok' });
  });

  it('bounds the sum of every core instance\'s memory by limits.memoryMiB (was: 40 × 62.5 MiB = 2.8 GB)', async () => {
    // 8 instances × 150 pages (9.4 MiB) = 75 MiB, each memory well under the 64 MiB default.
    const bytes = await manyInstances(8, 150);
    const before = cacheEntries().length;
    const error = await refusal(host, bytes);
    expect(error.code).toBe('memory-limit');
    expect(error.message).toMatch(/limits\.memoryMiB/);
    expect(error.message).toMatch(/raise limits\.memoryMiB/);
    expect(cacheEntries()).toHaveLength(before);
    // The same component under a budget that holds it runs.
    expect(await (await host.load(bytes, policy('{ memoryMiB: 100 }'))).run('x')).toMatchObject({ ok: true, output: 'ok' });
  });

  it('caps the number of core instances, whatever their size', async () => {
    const error = await refusal(host, await manyInstances(40, 1));
    expect(error.message).toMatch(/more than 32 core instances, the host's limit per component/);
    // And of memories: nine instances of a one-page memory are nine memories.
    expect((await refusal(host, await manyInstances(9, 1))).message).toMatch(/more than 8 linear memories, the host's limit per component/);
  });

  it('refuses a component over maxComponentBytes before reading or parsing it', async () => {
    const file = join(tempDir(), 'huge.wasm');
    writeFileSync(file, Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]));
    truncateSync(file, 150 * 1024 * 1024); // sparse: 150 MB on paper, nothing to read
    const started = performance.now();
    const error = await refusal(host, file);
    expect(error.code).toBe('too-large');
    expect(error.message).toMatch(/maxComponentBytes|--max-component-bytes/);
    expect(performance.now() - started).toBeLessThan(2000);
    const cli = ice(['run', file, '--policy', policy(), '--input', 'x', '--state', tempDir()]);
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/--max-component-bytes/);
    expect(cli.stderr).not.toMatch(/internal error|at .*\.js:\d+/);
  });

  it('refuses deeply nested code with a LoadError, never the engine\'s stack overflow', async () => {
    const depth = 20_000;
    const nested = `${'(block '.repeat(depth)}${')'.repeat(depth)}`;
    const bytes = await manyInstances(1, 1, `(func $deep ${nested})`).catch(() => undefined);
    // wasm-tools' own parser may refuse text this deep; then the binary is built by hand below.
    const component = bytes ?? deepBinary(depth);
    const error = await refusal(host, component);
    expect(error.message).not.toMatch(/Maximum call stack size exceeded|internal error/);
    expect(error.message).toMatch(/nested too deeply|nest/);
  });
});

/** A component whose one core module has a function body nested `depth` blocks deep (binary, built by hand). */
function deepBinary(depth: number): Uint8Array {
  const leb = (n: number): number[] => {
    const out: number[] = [];
    do {
      let byte = n & 0x7f;
      n >>>= 7;
      if (n !== 0) byte |= 0x80;
      out.push(byte);
    } while (n !== 0);
    return out;
  };
  const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
  const code = [0x00, ...Array(depth).fill([0x02, 0x40]).flat(), ...Array(depth).fill(0x0b), 0x0b];
  const core = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x01, 0x60, 0x00, 0x00]),
    ...section(3, [0x01, 0x00]),
    ...section(10, [0x01, ...leb(code.length), ...code]),
  ];
  // component header + one core module section (id 1)
  return Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00, ...section(1, core)]);
}
