/**
 * `ice build`: guest sources → components.
 *
 * ```ts
 * import { buildGuest } from './build/index.js';
 * const built = await buildGuest('guests/hello');        // or guests/hello/index.ts
 * await writeFile('hello.wasm', built.component);
 * ```
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildAssemblyScript } from './assemblyscript.js';
import { BuildError } from './errors.js';

export { BuildError } from './errors.js';
export { buildAssemblyScript, sdkDirectory, SDK_SPECIFIER } from './assemblyscript.js';
export type { AssemblyScriptBuild } from './assemblyscript.js';
export { componentize } from './component.js';

export interface BuildResult {
  language: 'assemblyscript';
  /** The component bytes. */
  component: Uint8Array;
  /** Size of the core module inside. */
  coreBytes: number;
  componentBytes: number;
  /** Wall time of the whole build. */
  ms: number;
}

/**
 * Builds one guest.
 * @param source an AssemblyScript `.ts` file, or a directory holding `index.ts`
 *   (a directory with `Cargo.toml` is a Rust guest: not supported yet).
 * @throws BuildError naming the source and the reason (compiler diagnostics included).
 */
export async function buildGuest(source: string): Promise<BuildResult> {
  const started = performance.now();
  const path = resolve(source);
  if (!existsSync(path)) throw new BuildError(path, 'no such file or directory');
  let entry = path;
  if (statSync(path).isDirectory()) {
    if (existsSync(join(path, 'Cargo.toml'))) {
      throw new BuildError(path, 'Rust guests are not supported yet (found Cargo.toml)');
    }
    entry = join(path, 'index.ts');
    if (!existsSync(entry)) {
      throw new BuildError(path, 'expected an AssemblyScript guest: the directory has no index.ts');
    }
  } else if (!path.endsWith('.ts')) {
    throw new BuildError(path, 'expected an AssemblyScript .ts file or a directory with index.ts');
  }
  const built = await buildAssemblyScript(entry);
  return {
    language: 'assemblyscript',
    component: built.component,
    coreBytes: built.core.byteLength,
    componentBytes: built.component.byteLength,
    ms: performance.now() - started,
  };
}

/**
 * Builds every `<guestsDir>/<name>/index.ts` into `<outDir>/<name>.wasm`, one after another (asc is
 * CPU-bound; running several at once only adds memory). Directories without index.ts are skipped.
 * @returns guest name → written component path
 */
export async function buildAllGuests(guestsDir: string, outDir: string): Promise<Record<string, string>> {
  const root = resolve(guestsDir);
  const target = resolve(outDir);
  await mkdir(target, { recursive: true });
  const entries = await readdir(root, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory() && existsSync(join(root, e.name, 'index.ts')))
    .map((e) => e.name)
    .sort();
  const written: Record<string, string> = {};
  for (const name of names) {
    const built = await buildGuest(join(root, name));
    const file = join(target, `${name}.wasm`);
    await writeFile(file, built.component);
    written[name] = file;
  }
  return written;
}
