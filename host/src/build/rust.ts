/**
 * Rust guest (a cargo package, `crate-type = ["cdylib"]`, depending on sdk/rust) → core module →
 * component, through cargo and the same `componentize` as AssemblyScript guests.
 *
 * The build owns the release profile, so every Rust guest gets the same guarantees whatever its
 * Cargo.toml says: panic = "abort" (a panic is logged by the SDK's hook, then traps; it never
 * unwinds through host frames), opt-level "s", fat LTO and one codegen unit (size), stripped.
 * These are set through CARGO_PROFILE_RELEASE_* variables, which override the manifest.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { componentize } from './component.js';
import { BuildError } from './errors.js';
import { findRustToolchain, RUST_PACKAGES_HINT, WASM_TARGET } from './rust-toolchain.js';

const PROFILE_ENV: Readonly<Record<string, string>> = {
  CARGO_PROFILE_RELEASE_PANIC: 'abort',
  CARGO_PROFILE_RELEASE_OPT_LEVEL: 's',
  CARGO_PROFILE_RELEASE_LTO: 'true',
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS: '1',
  CARGO_PROFILE_RELEASE_STRIP: 'true',
  CARGO_PROFILE_RELEASE_DEBUG: 'false',
  CARGO_TERM_COLOR: 'never',
};

/** Diagnostics beyond this many characters are cut from the front (the end holds the error). */
const DIAGNOSTICS_LIMIT = 8000;

export interface RustBuild {
  core: Uint8Array;
  component: Uint8Array;
  timings: { compileMs: number; componentizeMs: number };
}

/**
 * Builds the cargo package in `dir` for wasm32-unknown-unknown (release) and componentizes it.
 * @throws BuildError with cargo's diagnostics, or naming the missing toolchain parts.
 */
export async function buildRust(dir: string): Promise<RustBuild> {
  const packageDir = resolve(dir);
  const manifest = join(packageDir, 'Cargo.toml');
  if (!existsSync(manifest)) throw new BuildError(packageDir, 'expected a Rust guest: the directory has no Cargo.toml');
  const toolchain = findRustToolchain(packageDir);

  const started = performance.now();
  const cargo = await runCargo(toolchain.cargo, toolchain.rustc, manifest);
  const compileMs = performance.now() - started;
  if (cargo.code !== 0) throw new BuildError(packageDir, cargoFailure(cargo.stderr, cargo.code));

  const wasmFile = cdylibArtifact(cargo.stdout, manifest);
  if (wasmFile === undefined) {
    throw new BuildError(
      packageDir,
      'cargo built no WebAssembly library: add `[lib] crate-type = ["cdylib"]` to Cargo.toml',
    );
  }
  const core = new Uint8Array(await readFile(wasmFile));
  const componentStarted = performance.now();
  const component = await componentize(core, packageDir);
  return { core, component, timings: { compileMs, componentizeMs: performance.now() - componentStarted } };
}

interface CargoOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

function runCargo(cargo: string, rustc: string, manifest: string): Promise<CargoOutcome> {
  const args = [
    'build',
    '--release',
    '--target', WASM_TARGET,
    '--manifest-path', manifest,
    '--message-format', 'json-render-diagnostics',
  ];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cargo, args, {
      env: { ...process.env, RUSTC: rustc, ...PROFILE_ENV },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

/** The .wasm that cargo's JSON messages report for the package at `manifest`. */
function cdylibArtifact(messages: string, manifest: string): string | undefined {
  let found: string | undefined;
  for (const line of messages.split('\n')) {
    if (!line.startsWith('{')) continue;
    let message: { reason?: string; manifest_path?: string; target?: { kind?: string[] }; filenames?: string[] };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      continue;
    }
    if (message.reason !== 'compiler-artifact' || message.manifest_path !== manifest) continue;
    if (!message.target?.kind?.includes('cdylib')) continue;
    found = message.filenames?.find((f) => f.endsWith('.wasm')) ?? found;
  }
  return found;
}

/** cargo's rendered diagnostics, with a hint for the failures that have a known fix. */
function cargoFailure(stderr: string, code: number): string {
  let body = stderr.trim();
  if (body.length > DIAGNOSTICS_LIMIT) body = `...${body.slice(-DIAGNOSTICS_LIMIT)}`;
  let reason = `cargo build failed (exit ${code})`;
  if (body.length > 0) reason += `:\n${body}`;
  if (/linker `[^`]+` not found/.test(body)) {
    reason += `\nhint: the WebAssembly linker is missing (${RUST_PACKAGES_HINT})`;
  } else if (/can't find crate for `(std|core)`/.test(body)) {
    reason += `\nhint: the ${WASM_TARGET} standard library is missing (${RUST_PACKAGES_HINT})`;
  } else if (/does not understand this lock file|lock file version \d+ requires/.test(body)) {
    reason += '\nhint: Cargo.lock was written by a newer cargo than this one; delete it (or regenerate it with this cargo) and build again';
  } else if (/cannot find macro `export_run`|unresolved import `ice`|can't find crate for `ice`/.test(body)) {
    reason += '\nhint: depend on the ICE SDK: `ice = { path = "<ice>/sdk/rust" }` under [dependencies]';
  }
  return reason;
}
