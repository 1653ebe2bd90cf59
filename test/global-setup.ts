/**
 * Builds every guest from source once per test run, through the same build function as `ice build`:
 * AssemblyScript guests/<name> → build/guests/<name>.wasm, Rust guests/rust/<name> →
 * build/guests/rust/<name>.wasm.
 */
import { mkdirSync } from 'node:fs';
import { buildAllGuests } from '../host/src/build/index.js';
import { GUESTS_DIR, GUEST_BUILD_DIR, JS_GUESTS_DIR, JS_GUEST_BUILD_DIR, RUST_GUESTS_DIR, RUST_GUEST_BUILD_DIR } from './paths.js';

export default async function setup(): Promise<void> {
  mkdirSync(GUEST_BUILD_DIR, { recursive: true });
  for (const [language, from, to] of [
    ['AssemblyScript', GUESTS_DIR, GUEST_BUILD_DIR],
    ['Rust', RUST_GUESTS_DIR, RUST_GUEST_BUILD_DIR],
    // Third-party toolchain: componentize-js (StarlingMonkey), ~15 s per guest.
    ['JavaScript (componentize-js)', JS_GUESTS_DIR, JS_GUEST_BUILD_DIR],
  ] as const) {
    const started = performance.now();
    const built = await buildAllGuests(from, to);
    console.log(`built ${Object.keys(built).length} ${language} guests from source in ${Math.round(performance.now() - started)} ms`);
  }
}
