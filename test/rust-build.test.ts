/**
 * `ice build` for Rust guests: real cargo builds of throwaway packages that depend on sdk/rust, and
 * the errors a Rust author gets when something is wrong (no stack traces, the fix named).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildGuest, BuildError } from '../host/src/build/index.js';
import { freshHost, ice, tempDir, writePolicy } from './helpers.js';
import { POLICIES } from './fixtures/policies.js';
import { ROOT } from './paths.js';

const SDK = join(ROOT, 'sdk', 'rust');
/** Throwaway guests share one target dir, so the SDK compiles once for the whole file. */
const TARGET_ENV = { CARGO_TARGET_DIR: join(ROOT, 'build', 'cargo-test-target') };
process.env.CARGO_TARGET_DIR = TARGET_ENV.CARGO_TARGET_DIR;

/** A cargo package in a temp dir: `files` maps a relative path to its contents. */
function rustGuest(name: string, lib: string, files: Record<string, string> = {}): string {
  const dir = join(tempDir('ice-rust-'), name);
  mkdirSync(join(dir, 'src'), { recursive: true });
  const manifest =
    `[package]\nname = "${name}"\nversion = "0.1.0"\nedition = "2021"\n\n` +
    `[lib]\ncrate-type = ["cdylib"]\n\n[dependencies]\nice = { path = ${JSON.stringify(SDK)} }\n`;
  writeFileSync(join(dir, 'Cargo.toml'), manifest);
  writeFileSync(join(dir, 'src', 'lib.rs'), lib);
  for (const [path, text] of Object.entries(files)) writeFileSync(join(dir, path), text);
  return dir;
}

async function buildError(dir: string): Promise<BuildError> {
  const error = await buildGuest(dir).then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(BuildError);
  return error as BuildError;
}

describe('ice build (Rust)', () => {
  it('builds a Rust guest into a component that runs, importing only what it uses', () => {
    const out = join(tempDir(), 'hello.wasm');
    const build = ice(['build', 'guests/rust/hello', '-o', out]);
    expect(build.code).toBe(0);
    expect(build.stderr).toMatch(/^built guests\/rust\/hello \(rust\) → .*hello\.wasm: component \d+ bytes/);
    expect(ice(['inspect', out]).stdout).toContain('policy keys it needs: grants.log\n');
    const policy = POLICIES.hello();
    expect(ice(['run', out, '--policy', policy, '--input', 'rust', '--state', tempDir()])).toMatchObject({ code: 0, stdout: 'hello, rust!\n' });
  });

  it('logs a panic with its message and location, cut at a character boundary, then traps', async () => {
    // 899 ASCII bytes and then a 3-byte character straddling the 900-byte cut.
    const dir = rustGuest('panics', 'fn run(input: String) -> Result<String, String> {\n' +
      '    if input == "long" { panic!("{}€ and more", "x".repeat(899)); }\n' +
      '    let v: Vec<u8> = Vec::new();\n' +
      '    Ok(format!("{}", v[input.len()]))\n' +
      '}\nice::export_run!(run);\n');
    const built = await buildGuest(dir);
    const { host, guestLog } = await freshHost();
    const agent = await host.load(built.component, writePolicy('version: 1\ncomponent: panics\ngrants:\n  log: {}\n'));

    const long = await agent.run('long');
    expect(long).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest', error: expect.stringContaining('unreachable') });
    expect(guestLog.at(-1)).toBe(`error: ${'x'.repeat(899)}... (src/lib.rs:2:26)`);

    const index = await agent.run('abc');
    expect(index).toMatchObject({ ok: false, outcome: 'trap', blame: 'guest' });
    expect(guestLog.at(-1)).toMatch(/^error: index out of bounds: the len is 0 but the index is 3 \(.+:\d+:\d+\)$/);
    const calls = host.readRun(index.runId).filter((r) => r.record.type === 'call').map((r) => r.record);
    expect(calls).toMatchObject([{ call: 'ice:agent/log@0.1.0#write', args: [{ value: 'error' }, { value: expect.stringContaining('index out of bounds') }] }]);
    host.close();
  });

  it('reports a compile error with the file and line, and no stack trace', () => {
    const dir = rustGuest('broken', 'fn run(input: String) -> Result<String, String> {\n    Ok(nope)\n}\nice::export_run!(run);\n');
    const out = ice(['build', dir, '-o', join(dir, 'out.wasm')], { env: TARGET_ENV });
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(`cannot build ${dir}: cargo build failed`);
    expect(out.stderr).toContain('src/lib.rs:2:8');
    expect(out.stderr).not.toMatch(/\n\s+at /);
  });

  it('names the expected signature when run has another one', async () => {
    const dir = rustGuest('wrong-run', 'fn run(input: &str) -> String {\n    input.to_string()\n}\nice::export_run!(run);\n');
    const error = await buildError(dir);
    expect(error.reason).toContain('fn(String) -> Result<String, String>');
  });

  it('refuses a package that is not a cdylib, naming the Cargo.toml line to add', async () => {
    const dir = rustGuest('plain-lib', 'pub fn f() {}\n');
    writeFileSync(join(dir, 'Cargo.toml'), `[package]\nname = "plain-lib"\nversion = "0.1.0"\nedition = "2021"\n`);
    expect((await buildError(dir)).reason).toBe('cargo built no WebAssembly library: add `[lib] crate-type = ["cdylib"]` to Cargo.toml');
  });

  it('refuses a cdylib without export_run!, naming the missing exports', async () => {
    const dir = rustGuest('no-run', 'pub fn helper() -> u32 { 1 }\n');
    expect((await buildError(dir)).reason).toContain('core module does not export cabi_realloc, run, cabi_post_run');
  });

  it('refuses a workspace root and a directory with both languages', async () => {
    expect((await buildError(join(ROOT, 'guests', 'rust'))).reason).toBe(
      'Cargo.toml here is a workspace without a [package]: pass one member directory',
    );
    const both = rustGuest('both', 'fn run(i: String) -> Result<String, String> { Ok(i) }\nice::export_run!(run);\n', { 'index.ts': '' });
    expect((await buildError(both)).reason).toContain('has both index.ts and Cargo.toml');
  });

  it('explains a Cargo.lock from a newer cargo', async () => {
    const dir = rustGuest('new-lock', 'fn run(i: String) -> Result<String, String> { Ok(i) }\nice::export_run!(run);\n', {
      'Cargo.lock': 'version = 4\n',
    });
    expect((await buildError(dir)).reason).toContain('hint: Cargo.lock was written by a newer cargo than this one');
  });

  it('names the Debian packages when no toolchain has the wasm32 target', () => {
    const out = ice(['build', 'guests/rust/hello', '-o', join(tempDir(), 'x.wasm')], { env: { ICE_RUSTC: '/nonexistent/rustc' } });
    expect(out.code).toBe(2);
    expect(out.stderr).toBe(
      `cannot build ${join(ROOT, 'guests', 'rust', 'hello')}: no Rust toolchain for wasm32-unknown-unknown was found ` +
        '(/nonexistent/rustc: not found). Install one: on Debian/Ubuntu: apt-get install rustc cargo libstd-rust-dev-wasm32 lld ' +
        '(or rustup target add wasm32-unknown-unknown); set ICE_RUSTC / ICE_CARGO to choose a toolchain\n',
    );
  });
});
