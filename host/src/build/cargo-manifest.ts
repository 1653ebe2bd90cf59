/**
 * What the build needs from a Cargo.toml, read from its text (no TOML parser: the few keys below are
 * matched on their usual one-line forms).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function readManifest(packageDir: string): string {
  return readFileSync(join(packageDir, 'Cargo.toml'), 'utf8');
}

/** A `[package]` table: a crate, not only a workspace root. */
export function declaresPackage(manifest: string): boolean {
  return /^\s*\[package\]/m.test(manifest);
}

/** `crate-type = [… "cdylib" …]`. */
export function declaresCdylib(manifest: string): boolean {
  return /^\s*crate-type\s*=\s*\[[^\]]*["']cdylib["']/m.test(manifest);
}

/** A binary target: `src/main.rs` (cargo's default) or a `[[bin]]` table. */
export function declaresBinary(packageDir: string, manifest: string): boolean {
  return existsSync(join(packageDir, 'src', 'main.rs')) || /^\s*\[\[bin\]\]/m.test(manifest);
}

/**
 * `world = "…"` under `[package.metadata.ice]`: the world of `wit/` to build when there are several.
 */
export function iceWorld(manifest: string): string | undefined {
  const header = /^\s*\[package\.metadata\.ice\][ \t]*(#.*)?$/m.exec(manifest);
  if (header === null) return undefined;
  const rest = manifest.slice(header.index + header[0].length);
  const table = rest.slice(0, rest.search(/^\s*\[/m) < 0 ? rest.length : rest.search(/^\s*\[/m));
  return /^\s*world\s*=\s*"([^"]*)"/m.exec(table)?.[1];
}
