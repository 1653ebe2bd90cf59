/**
 * Finds a Rust toolchain that can build wasm32-unknown-unknown guests (or, for WASI commands,
 * wasm32-wasip1 / wasm32-wasi ones).
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
/**
 * WASI preview 1 commands: rustup has named the target wasm32-wasip1 since Rust 1.78 (and dropped
 * wasm32-wasi in 1.84); Debian's rustc 1.63 only knows wasm32-wasi. The first one found is used.
 */
export const WASI_TARGETS: readonly string[] = ['wasm32-wasip1', 'wasm32-wasi'];
/** What to install on Debian/Ubuntu to build Rust guests. */
export const RUST_PACKAGES_HINT = 'on Debian/Ubuntu: apt-get install rustc cargo libstd-rust-dev-wasm32 lld';

export interface RustToolchain {
  rustc: string;
  cargo: string;
  /** The target to build for: the first of the requested ones whose standard library is installed. */
  target: string;
  /** `rustc --version`, for build reports. */
  version: string;
}

const cached = new Map<string, RustToolchain>();

/**
 * @param targets the targets that would do, in order of preference
 * @throws BuildError naming what is missing and the packages that provide it.
 */
export function findRustToolchain(
  origin: string,
  env: NodeJS.ProcessEnv = process.env,
  targets: readonly string[] = [WASM_TARGET],
): RustToolchain {
  const key = targets.join(' ');
  const hit = cached.get(key);
  if (hit !== undefined && env === process.env) return hit;
  const candidates = env.ICE_RUSTC ? [env.ICE_RUSTC] : ['/usr/bin/rustc', 'rustc'];
  const wanted = targets.join(' or ');
  const tried: string[] = [];
  for (const rustc of candidates) {
    const probe = probeRustc(rustc, targets);
    if (probe.kind === 'missing') {
      tried.push(`${rustc}: not found`);
      continue;
    }
    if (probe.kind === 'no-target') {
      tried.push(`${rustc} (${probe.version}): no ${wanted} standard library in ${probe.libdir}`);
      continue;
    }
    const sysrootCargo = join(probe.sysroot, 'bin', 'cargo');
    const cargo = env.ICE_CARGO ?? (existsSync(sysrootCargo) ? sysrootCargo : 'cargo');
    if (spawnSync(cargo, ['--version'], { encoding: 'utf8' }).status !== 0) {
      tried.push(`${rustc} (${probe.version}): cargo not found (${cargo})`);
      continue;
    }
    const found = { rustc, cargo, target: probe.target, version: probe.version };
    if (env === process.env) cached.set(key, found);
    return found;
  }
  throw new BuildError(
    origin,
    `no Rust toolchain for ${wanted} was found (${tried.join('; ')}). Install one: ${RUST_PACKAGES_HINT} ` +
      `(or rustup target add ${targets[0]}); set ICE_RUSTC / ICE_CARGO to choose a toolchain`,
  );
}

type Probe =
  | { kind: 'missing' }
  | { kind: 'no-target'; version: string; libdir: string }
  | { kind: 'ok'; version: string; sysroot: string; target: string };

function probeRustc(rustc: string, targets: readonly string[]): Probe {
  const run = (args: string[]): string | undefined => {
    const out = spawnSync(rustc, args, { encoding: 'utf8' });
    return out.status === 0 ? out.stdout.trim() : undefined;
  };
  const version = run(['--version']);
  if (version === undefined) return { kind: 'missing' };
  let libdir = '(unknown)';
  for (const target of targets) {
    // An unknown target (wasm32-wasip1 before Rust 1.78) fails this, like a missing one.
    const dir = run(['--print', 'target-libdir', '--target', target]);
    if (dir === undefined) continue;
    libdir = dir;
    const hasStd = existsSync(dir) && readdirSync(dir).some((f) => f.startsWith('libstd-') && f.endsWith('.rlib'));
    if (hasStd) return { kind: 'ok', version, sysroot: run(['--print', 'sysroot']) ?? '/usr', target };
  }
  return { kind: 'no-target', version, libdir };
}
