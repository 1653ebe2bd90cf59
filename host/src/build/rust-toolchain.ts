/**
 * Finds a Rust toolchain that can build wasm32-unknown-unknown guests.
 *
 * Rust guests need rustc with the wasm32 standard library, cargo, and lld. On Debian those are the
 * packages below; a rustup toolchain works too once `rustup target add wasm32-unknown-unknown` has
 * run. Candidates are tried in order: $ICE_RUSTC alone when it is set, else /usr/bin/rustc (Debian's,
 * which has the target when its package is installed) and then `rustc` on PATH (often a rustup
 * proxy whose toolchain lacks the target). cargo is $ICE_CARGO, else the one in the chosen rustc's
 * sysroot, else `cargo` on PATH.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BuildError } from './errors.js';

export const WASM_TARGET = 'wasm32-unknown-unknown';
/** What to install on Debian/Ubuntu to build Rust guests. */
export const RUST_PACKAGES_HINT = 'on Debian/Ubuntu: apt-get install rustc cargo libstd-rust-dev-wasm32 lld';

export interface RustToolchain {
  rustc: string;
  cargo: string;
  /** `rustc --version`, for build reports. */
  version: string;
}

let cached: RustToolchain | undefined;

/** @throws BuildError naming what is missing and the packages that provide it. */
export function findRustToolchain(origin: string, env: NodeJS.ProcessEnv = process.env): RustToolchain {
  if (cached !== undefined && env === process.env) return cached;
  const candidates = env.ICE_RUSTC ? [env.ICE_RUSTC] : ['/usr/bin/rustc', 'rustc'];
  const tried: string[] = [];
  for (const rustc of candidates) {
    const probe = probeRustc(rustc);
    if (probe.kind === 'missing') {
      tried.push(`${rustc}: not found`);
      continue;
    }
    if (probe.kind === 'no-target') {
      tried.push(`${rustc} (${probe.version}): no ${WASM_TARGET} standard library in ${probe.libdir}`);
      continue;
    }
    const sysrootCargo = join(probe.sysroot, 'bin', 'cargo');
    const cargo = env.ICE_CARGO ?? (existsSync(sysrootCargo) ? sysrootCargo : 'cargo');
    if (spawnSync(cargo, ['--version'], { encoding: 'utf8' }).status !== 0) {
      tried.push(`${rustc} (${probe.version}): cargo not found (${cargo})`);
      continue;
    }
    const found = { rustc, cargo, version: probe.version };
    if (env === process.env) cached = found;
    return found;
  }
  throw new BuildError(
    origin,
    `no Rust toolchain for ${WASM_TARGET} was found (${tried.join('; ')}). Install one: ${RUST_PACKAGES_HINT} ` +
      `(or rustup target add ${WASM_TARGET}); set ICE_RUSTC / ICE_CARGO to choose a toolchain`,
  );
}

type Probe =
  | { kind: 'missing' }
  | { kind: 'no-target'; version: string; libdir: string }
  | { kind: 'ok'; version: string; sysroot: string };

function probeRustc(rustc: string): Probe {
  const run = (args: string[]): string | undefined => {
    const out = spawnSync(rustc, args, { encoding: 'utf8' });
    return out.status === 0 ? out.stdout.trim() : undefined;
  };
  const version = run(['--version']);
  if (version === undefined) return { kind: 'missing' };
  const libdir = run(['--print', 'target-libdir', '--target', WASM_TARGET]) ?? '(unknown)';
  const hasStd = existsSync(libdir) && readdirSync(libdir).some((f) => f.startsWith('libstd-') && f.endsWith('.rlib'));
  if (!hasStd) return { kind: 'no-target', version, libdir };
  return { kind: 'ok', version, sysroot: run(['--print', 'sysroot']) ?? '/usr' };
}
