/**
 * Builds every guest in guests/ from source once per test run (AssemblyScript → core module →
 * component through the same build function as `ice build`), into build/guests/<name>.wasm.
 */
import { mkdirSync } from 'node:fs';
import { buildAllGuests } from '../host/src/build/index.js';
import { GUESTS_DIR, GUEST_BUILD_DIR } from './paths.js';

export default async function setup(): Promise<void> {
  mkdirSync(GUEST_BUILD_DIR, { recursive: true });
  const started = performance.now();
  const built = await buildAllGuests(GUESTS_DIR, GUEST_BUILD_DIR);
  console.log(`built ${Object.keys(built).length} guests from source in ${Math.round(performance.now() - started)} ms`);
}
