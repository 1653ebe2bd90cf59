import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const GUESTS_DIR = join(ROOT, 'guests');
export const GUEST_BUILD_DIR = join(ROOT, 'build', 'guests');
export const CASES_DIR = join(ROOT, 'test', 'cases');
export const ICE_BIN = join(ROOT, 'bin', 'ice.js');

export function guestWasm(name: string): string {
  return join(GUEST_BUILD_DIR, `${name}.wasm`);
}
