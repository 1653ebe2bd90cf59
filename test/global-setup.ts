/**
 * Builds every guest from source once per test run, through the same build function as `ice build`:
 * AssemblyScript guests/<name> → build/guests/<name>.wasm, Rust guests/rust/<name> →
 * build/guests/rust/<name>.wasm (guests/rust/command is a WASI command), and the components of
 * examples/ that tests use (examples/calc → build/examples/calc.wasm).
 *
 * ICE_REUSE_GUESTS=1 (local iteration only; CI never sets it) skips a language whose built components are
 * all newer than every file of its sources and the SDKs, so a focused `vitest run <file>` starts in seconds.
 */
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAllGuests, buildGuest } from '../host/src/build/index.js';
import {
  CALC_COMPONENT,
  EXAMPLES_DIR,
  EXAMPLE_BUILD_DIR,
  GUESTS_DIR,
  GUEST_BUILD_DIR,
  JS_GUESTS_DIR,
  JS_GUEST_BUILD_DIR,
  ROOT,
  RUST_GUESTS_DIR,
  RUST_GUEST_BUILD_DIR,
} from './paths.js';

/** Example components tests use: source directory → component. */
const EXAMPLES: readonly (readonly [string, string])[] = [[join(EXAMPLES_DIR, 'calc'), CALC_COMPONENT]];

export default async function setup(): Promise<void> {
  mkdirSync(GUEST_BUILD_DIR, { recursive: true });
  for (const [language, from, to] of [
    ['AssemblyScript', GUESTS_DIR, GUEST_BUILD_DIR],
    ['Rust', RUST_GUESTS_DIR, RUST_GUEST_BUILD_DIR],
    // Third-party toolchain: componentize-js (StarlingMonkey), ~15 s per guest.
    ['JavaScript (componentize-js)', JS_GUESTS_DIR, JS_GUEST_BUILD_DIR],
  ] as const) {
    if (process.env['ICE_REUSE_GUESTS'] === '1' && upToDate(from, to)) continue;
    const started = performance.now();
    const built = await buildAllGuests(from, to);
    console.log(`built ${Object.keys(built).length} ${language} guests from source in ${Math.round(performance.now() - started)} ms`);
  }
  mkdirSync(EXAMPLE_BUILD_DIR, { recursive: true });
  for (const [from, to] of EXAMPLES) {
    if (process.env['ICE_REUSE_GUESTS'] === '1' && existsSync(to) && statSync(to).mtimeMs > Math.max(newest(from), sharedSources())) continue;
    const built = await buildGuest(from);
    writeFileSync(to, built.component);
    console.log(`built ${from} (${built.form}) from source in ${Math.round(built.ms)} ms`);
  }
}

/** What every guest's build depends on besides its own sources. */
function sharedSources(): number {
  return Math.max(newest(join(ROOT, 'sdk')), newest(join(ROOT, 'wit')), newest(join(ROOT, 'host', 'src', 'build')));
}

/** Every guest directory of `from` has a component in `to` newer than all sources it could depend on. */
function upToDate(from: string, to: string): boolean {
  const guests = readdirSync(from, { withFileTypes: true }).filter((e) => e.isDirectory() && !['target', 'shared', 'js', 'rust'].includes(e.name));
  const sources = Math.max(newest(from), sharedSources());
  return guests.every((g) => {
    const out = join(to, `${g.name}.wasm`);
    return existsSync(out) && statSync(out).mtimeMs > sources;
  });
}

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'target' || entry.name === 'node_modules') continue;
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}
