/**
 * Rust guest (a cargo package, `crate-type = ["cdylib"]`, depending on sdk/rust) → core module →
 * component, through cargo (cargo.ts: the build's release profile) and the same `componentize` as
 * AssemblyScript guests.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cargoArtifacts, cargoFailure, runCargo } from './cargo.js';
import { componentize } from './component.js';
import { BuildError } from './errors.js';
import { findRustToolchain, WASM_TARGET } from './rust-toolchain.js';

export interface RustBuild {
  core: Uint8Array;
  component: Uint8Array;
  timings: { compileMs: number; componentizeMs: number };
}

/**
 * Builds the cargo package in `dir` for wasm32-unknown-unknown (release) and componentizes it.
 * @throws BuildError with cargo's diagnostics, or naming the missing toolchain parts.
 */
/**
 * cargo build of the package's cdylib for wasm32-unknown-unknown (release, the build's profile): the
 * core module, for either component form (the ICE agent world, or the package's own world).
 */
export async function compileCdylib(packageDir: string): Promise<{ core: Uint8Array; compileMs: number }> {
  const manifest = join(packageDir, 'Cargo.toml');
  const toolchain = findRustToolchain(packageDir);
  const started = performance.now();
  const cargo = await runCargo(toolchain, manifest, WASM_TARGET);
  const compileMs = performance.now() - started;
  if (cargo.code !== 0) throw new BuildError(packageDir, cargoFailure(cargo.stderr, cargo.code, WASM_TARGET));
  const wasmFile = cargoArtifacts(cargo.stdout, manifest, 'cdylib').at(-1)?.wasm;
  if (wasmFile === undefined) {
    throw new BuildError(packageDir, 'cargo built no WebAssembly library: add `[lib] crate-type = ["cdylib"]` to Cargo.toml');
  }
  return { core: new Uint8Array(await readFile(wasmFile)), compileMs };
}

export async function buildRust(dir: string): Promise<RustBuild> {
  const packageDir = resolve(dir);
  const manifest = join(packageDir, 'Cargo.toml');
  if (!existsSync(manifest)) throw new BuildError(packageDir, 'expected a Rust guest: the directory has no Cargo.toml');
  const { core, compileMs } = await compileCdylib(packageDir);
  const componentStarted = performance.now();
  const component = await componentize(core, packageDir);
  return { core, component, timings: { compileMs, componentizeMs: performance.now() - componentStarted } };
}
