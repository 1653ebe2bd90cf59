/**
 * The ICE world as data: where its WIT lives, its package and interface names, and its source as one
 * string for jco's `componentEmbed({ witSource })` (the JS API needs no filesystem preopens, unlike
 * `jco embed --wit <dir>` on jco 1.35).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ICE_PACKAGE = 'ice:agent';
export const ICE_VERSION = '0.1.0';
export const ICE_WORLD = 'agent';

/** The capability interfaces a component may import (any subset), in WIT order. */
export const CAPABILITY_INTERFACES = ['log', 'clock', 'random', 'kv', 'events', 'http', 'model'] as const;
export type CapabilityName = (typeof CAPABILITY_INTERFACES)[number];

/** Interfaces that carry only types: importing them grants nothing. */
export const TYPE_ONLY_INTERFACES = ['types'] as const;

/** `ice:agent/kv@0.1.0` for `kv`. */
export function qualifiedInterface(name: string): string {
  return `${ICE_PACKAGE}/${name}@${ICE_VERSION}`;
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
  const header = `package ${ICE_PACKAGE}@${ICE_VERSION};`;
  const bodies = files.map((file) => {
    const text = readFileSync(join(dir, file), 'utf8');
    const stripped = text.replace(/^\s*package\s+[^;]+;\s*$/m, '');
    if (stripped === text) throw new Error(`${join(dir, file)}: expected a "${header}" line`);
    return `// ---- ${file}\n${stripped.trim()}\n`;
  });
  cachedSource = `${header}\n\n${bodies.join('\n')}`;
  return cachedSource;
}

/**
 * Each capability interface's functions, as jco names them on the import object. Checked against the
 * declarations generated from wit/ (host/src/generated), so this list cannot drift from the WIT.
 */
export const CAPABILITY_FUNCTIONS = {
  log: ['write'],
  clock: ['now'],
  random: ['bytes'],
  kv: ['get', 'set', 'delete', 'keys'],
  events: ['emit'],
  http: ['fetch'],
  model: ['complete'],
} as const satisfies {
  log: readonly (keyof typeof import('../generated/interfaces/ice-agent-log.js'))[];
  clock: readonly (keyof typeof import('../generated/interfaces/ice-agent-clock.js'))[];
  random: readonly (keyof typeof import('../generated/interfaces/ice-agent-random.js'))[];
  kv: readonly (keyof typeof import('../generated/interfaces/ice-agent-kv.js'))[];
  events: readonly (keyof typeof import('../generated/interfaces/ice-agent-events.js'))[];
  http: readonly (keyof typeof import('../generated/interfaces/ice-agent-http.js'))[];
  model: readonly (keyof typeof import('../generated/interfaces/ice-agent-model.js'))[];
};

/** Capabilities whose effects the host thread performs (a run reaches them through the gateway). */
export const GATEWAY_CAPABILITIES: readonly CapabilityName[] = ['http', 'model'];
