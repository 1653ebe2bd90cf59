import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const GUESTS_DIR = join(ROOT, 'guests');
export const RUST_GUESTS_DIR = join(GUESTS_DIR, 'rust');
export const GUEST_BUILD_DIR = join(ROOT, 'build', 'guests');
export const RUST_GUEST_BUILD_DIR = join(GUEST_BUILD_DIR, 'rust');
export const JS_GUESTS_DIR = join(GUESTS_DIR, 'js');
export const JS_GUEST_BUILD_DIR = join(GUEST_BUILD_DIR, 'js');
export const CASES_DIR = join(ROOT, 'test', 'cases');
export const EXAMPLES_DIR = join(ROOT, 'examples');
export const EXAMPLE_BUILD_DIR = join(ROOT, 'build', 'examples');
/** examples/calc: a Rust component with its own WIT world (typed exports, an exported interface, kv). */
export const CALC_COMPONENT = join(EXAMPLE_BUILD_DIR, 'calc.wasm');
/** guests/rust/command: a Rust program as a wasi:cli/command component. */
export const COMMAND_COMPONENT = join(RUST_GUEST_BUILD_DIR, 'command.wasm');
export const ICE_BIN = join(ROOT, 'bin', 'ice.js');

/** Every guest in guests/ exists in each of these languages; behaviour tests run against all. */
export const LANGUAGES = ['assemblyscript', 'rust'] as const;
export type Language = (typeof LANGUAGES)[number];

/** The component built from guests/<name> (AssemblyScript) or guests/rust/<name>. */
export function guestWasm(name: string, language: Language = 'assemblyscript'): string {
  return join(language === 'rust' ? RUST_GUEST_BUILD_DIR : GUEST_BUILD_DIR, `${name}.wasm`);
}
