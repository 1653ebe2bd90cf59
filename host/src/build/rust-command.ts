/**
 * A Rust WASI command: a cargo package with a binary target (`fn main`, std) built for WASI preview 1
 * and adapted to a `wasi:cli/command` component by jco's preview1 command adapter. It imports only
 * WASI interfaces, which the host grants under the policy's `grants.wasi`.
 */
import { componentNew, preview1AdapterCommandPath } from '@bytecodealliance/jco';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { cargoArtifacts, cargoFailure, runCargo } from './cargo.js';
import { BuildError } from './errors.js';
import type { RustBuild } from './rust.js';
import { findRustToolchain, WASI_TARGETS } from './rust-toolchain.js';

/** The core module's import module name the adapter implements. */
const PREVIEW1_MODULE = 'wasi_snapshot_preview1';

let adapter: Uint8Array | undefined;

/** jco's preview1 command adapter, found from jco's own package. */
async function commandAdapter(origin: string): Promise<Uint8Array> {
  if (adapter !== undefined) return adapter;
  const path = fileURLToPath(preview1AdapterCommandPath());
  if (!existsSync(path)) {
    throw new BuildError(origin, `jco's WASI preview1 command adapter is missing (${path}): reinstall @bytecodealliance/jco (npm ci)`);
  }
  adapter = new Uint8Array(await readFile(path));
  return adapter;
}

/** @throws BuildError naming a missing WASI standard library, cargo's diagnostics, or a package without one binary. */
export async function buildRustCommand(dir: string): Promise<RustBuild> {
  const packageDir = resolve(dir);
  const manifest = join(packageDir, 'Cargo.toml');
  const toolchain = findRustToolchain(packageDir, process.env, WASI_TARGETS);

  const started = performance.now();
  const cargo = await runCargo(toolchain, manifest, toolchain.target);
  const compileMs = performance.now() - started;
  if (cargo.code !== 0) throw new BuildError(packageDir, cargoFailure(cargo.stderr, cargo.code, toolchain.target));
  const binaries = cargoArtifacts(cargo.stdout, manifest, 'bin');
  if (binaries.length !== 1) {
    throw new BuildError(
      packageDir,
      binaries.length === 0
        ? 'cargo built no WebAssembly program: a WASI command needs src/main.rs with `fn main` (or one [[bin]] target)'
        : `the package has ${binaries.length} binaries (${binaries.map((b) => b.name).join(', ')}): a component is one command, keep one [[bin]]`,
    );
  }
  const core = new Uint8Array(await readFile((binaries[0] as { wasm: string }).wasm));

  const componentStarted = performance.now();
  let component: Uint8Array;
  try {
    component = await componentNew(core, [[PREVIEW1_MODULE, await commandAdapter(packageDir)]]);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new BuildError(packageDir, `creating the wasi:cli/command component failed: ${message}`);
  }
  return { core, component, timings: { compileMs, componentizeMs: performance.now() - componentStarted } };
}
