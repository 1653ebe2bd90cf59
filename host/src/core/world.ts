/**
 * The ICE world as data: where its WIT lives, its package name and version, and its source as one
 * string for jco's `componentEmbed({ witSource })` (the JS API needs no filesystem preopens, unlike
 * `jco embed --wit <dir>` on jco 1.35). Which interfaces it has, and what each grants, is the
 * capability registry's (capabilities/registry.ts).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ICE_PACKAGE = 'ice:agent';
/** The version of the ice:agent WIT package (not ICE's own version: see core/version.ts). */
export const ICE_WIT_VERSION = '0.1.0';
export const ICE_WORLD = 'agent';

/** Interfaces that carry only types: importing them grants nothing. */
export const TYPE_ONLY_INTERFACES = ['types'] as const;

/** `ice:agent/kv@0.1.0` for `kv`. */
export function qualifiedInterface(name: string): string {
  return `${ICE_PACKAGE}/${name}@${ICE_WIT_VERSION}`;
}

/** `ice:agent/kv` for `kv`: the key jco's generated instantiation code looks an import up by. */
export function unversionedInterface(name: string): string {
  return `${ICE_PACKAGE}/${name}`;
}

/** `ice:agent/kv@0.1.0#get`: how the ledger names a call. */
export function callName(name: string, fn: string): string {
  return `${qualifiedInterface(name)}#${fn}`;
}

/** The repository's wit/ directory, found relative to this module both from sources and from dist/. */
export function witDirectory(): string {
  let dir = fileURLToPath(new URL('.', import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'wit');
    try {
      if (readdirSync(candidate).includes('world.wit')) return candidate;
    } catch {
      // not here; keep walking up
    }
    dir = join(dir, '..');
  }
  throw new Error('ICE installation is incomplete: wit/world.wit was not found above ' + fileURLToPath(import.meta.url));
}

let cachedSource: string | undefined;

/**
 * All of wit/*.wit as one WIT document: one `package` header, then every interface and the world.
 * The files each declare `package ice:agent@0.1.0;` so each stays valid on its own for other tools.
 */
export function worldWitSource(dir: string = witDirectory()): string {
  if (cachedSource !== undefined && dir === witDirectory()) return cachedSource;
  const files = readdirSync(dir).filter((f) => f.endsWith('.wit')).sort();
  const header = `package ${ICE_PACKAGE}@${ICE_WIT_VERSION};`;
  const bodies = files.map((file) => {
    const text = readFileSync(join(dir, file), 'utf8');
    const stripped = text.replace(/^\s*package\s+[^;]+;\s*$/m, '');
    if (stripped === text) throw new Error(`${join(dir, file)}: expected a "${header}" line`);
    return `// ---- ${file}\n${stripped.trim()}\n`;
  });
  cachedSource = `${header}\n\n${bodies.join('\n')}`;
  return cachedSource;
}
