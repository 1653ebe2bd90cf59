/**
 * cargo, as every Rust guest form runs it: a release build for one wasm target with the build's own
 * profile, its JSON messages read for the artifacts, its failures explained.
 *
 * The build owns the release profile, so every Rust guest gets the same guarantees whatever its
 * Cargo.toml says: panic = "abort" (a panic traps; it never unwinds through host frames), opt-level
 * "s", fat LTO and one codegen unit (size), stripped. These are set through CARGO_PROFILE_RELEASE_*
 * variables, which override the manifest.
 */
import { spawn } from 'node:child_process';
import { RUST_PACKAGES_HINT } from './rust-toolchain.js';
import type { RustToolchain } from './rust-toolchain.js';

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

export interface CargoOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCargo(toolchain: Pick<RustToolchain, 'cargo' | 'rustc'>, manifest: string, target: string): Promise<CargoOutcome> {
  const args = [
    'build',
    '--release',
    '--target', target,
    '--manifest-path', manifest,
    '--message-format', 'json-render-diagnostics',
  ];
  return new Promise((resolvePromise, reject) => {
    const child = spawn(toolchain.cargo, args, {
      env: { ...process.env, RUSTC: toolchain.rustc, ...PROFILE_ENV },
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

export interface CargoArtifact {
  /** The target's name (the `[[bin]]` name for a binary). */
  name: string;
  wasm: string;
}

/**
 * The .wasm files cargo's JSON messages report for the package at `manifest`, of one target kind
 * (`cdylib` or `bin`): one per target, a later message for a target replacing an earlier one.
 */
export function cargoArtifacts(messages: string, manifest: string, kind: 'cdylib' | 'bin'): CargoArtifact[] {
  const found = new Map<string, string>();
  for (const line of messages.split('\n')) {
    if (!line.startsWith('{')) continue;
    let message: {
      reason?: string;
      manifest_path?: string;
      target?: { kind?: string[]; name?: string };
      filenames?: string[];
      executable?: string | null;
    };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      continue;
    }
    if (message.reason !== 'compiler-artifact' || message.manifest_path !== manifest) continue;
    if (!message.target?.kind?.includes(kind)) continue;
    // A binary's .wasm is its `executable`; a cdylib only lists it among its filenames.
    const wasm = message.executable ?? message.filenames?.find((f) => f.endsWith('.wasm'));
    if (wasm) found.set(message.target.name ?? '', wasm);
  }
  return [...found].map(([name, wasm]) => ({ name, wasm }));
}

/** cargo's rendered diagnostics, with a hint for the failures that have a known fix. */
export function cargoFailure(stderr: string, code: number, target: string): string {
  let body = stderr.trim();
  if (body.length > DIAGNOSTICS_LIMIT) body = `...${body.slice(-DIAGNOSTICS_LIMIT)}`;
  let reason = `cargo build failed (exit ${code})`;
  if (body.length > 0) reason += `:\n${body}`;
  if (/linker `[^`]+` not found/.test(body)) {
    reason += `\nhint: the WebAssembly linker is missing (${RUST_PACKAGES_HINT})`;
  } else if (/can't find crate for `(std|core)`/.test(body)) {
    reason += `\nhint: the ${target} standard library is missing (${RUST_PACKAGES_HINT})`;
  } else if (/does not understand this lock file|lock file version \d+ requires/.test(body)) {
    reason += '\nhint: Cargo.lock was written by a newer cargo than this one; delete it (or regenerate it with this cargo) and build again';
  } else if (/cannot find macro `export_run`|unresolved import `ice`|can't find crate for `ice`/.test(body)) {
    reason += '\nhint: depend on the ICE SDK: `ice = { path = "<ice>/sdk/rust" }` under [dependencies]';
  }
  return reason;
}
