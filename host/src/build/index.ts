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
import { declaresBinary, declaresCdylib, declaresPackage, readManifest } from './cargo-manifest.js';
import { BuildError } from './errors.js';
import { GUEST_WIT_DIR } from './guest-wit.js';
import { buildRust } from './rust.js';
import { buildRustCommand } from './rust-command.js';
import { buildRustWorld } from './rust-world.js';
import { buildJavaScript, isJavaScriptGuest } from './javascript.js';

export { BuildError } from './errors.js';
export { buildAssemblyScript, sdkDirectory, SDK_SPECIFIER } from './assemblyscript.js';
export type { AssemblyScriptBuild } from './assemblyscript.js';
export { componentize } from './component.js';
export { buildRust } from './rust.js';
export type { RustBuild } from './rust.js';
export { buildRustWorld } from './rust-world.js';
export type { RustWorldBuild } from './rust-world.js';
export { buildRustCommand } from './rust-command.js';
export { findRustToolchain, RUST_PACKAGES_HINT, WASI_TARGETS } from './rust-toolchain.js';
export { customSections, appendCustomSection } from './custom-sections.js';
export type { CustomSection } from './custom-sections.js';
export { PACKAGE_DOCS_SECTION, ICE_PACKAGE_DOCS_SECTION } from './component-docs.js';
export type { PackageDocs, WorldDocs, InterfaceDocs, TypeDocs, FunctionDocs } from './wit-docs.js';

/**
 * What a component is:
 * - `agent`: the ICE agent world (`ice:agent/agent`: exports `run`), from AssemblyScript, Rust or JavaScript;
 * - `world`: a Rust guest's own WIT world (its `wit/` directory), which may import ICE interfaces;
 * - `command`: a Rust program (`fn main`) as a `wasi:cli/command` component.
 */
export type GuestForm = 'agent' | 'world' | 'command';

export interface BuildResult {
  language: 'assemblyscript' | 'rust' | 'javascript';
  form: GuestForm;
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
 * @param source an AssemblyScript `.ts` file or a directory holding `index.ts`; or a Rust guest: a
 *   directory holding a cargo package (`Cargo.toml` with `[package]`), or that `Cargo.toml`. A Rust
 *   package with a `wit/` directory is built against its own world there; one with a binary target
 *   (`src/main.rs`) and no cdylib becomes a WASI command; any other is an ICE agent.
 * @throws BuildError naming the source and the reason (compiler diagnostics included).
 */
export async function buildGuest(source: string): Promise<BuildResult> {
  const started = performance.now();
  const path = resolve(source);
  if (!existsSync(path)) throw new BuildError(path, 'no such file or directory');
  const guest = guestKind(path);
  const form = guest.language === 'rust' ? rustForm(guest.path) : 'agent';
  const built =
    guest.language === 'javascript'
      ? await buildJavaScript(guest.path)
      : guest.language === 'assemblyscript'
        ? await buildAssemblyScript(guest.path)
        : form === 'world'
          ? await buildRustWorld(guest.path)
          : form === 'command'
            ? await buildRustCommand(guest.path)
            : await buildRust(guest.path);
  return {
    language: guest.language,
    form,
    component: built.component,
    coreBytes: built.core.byteLength,
    componentBytes: built.component.byteLength,
    ms: performance.now() - started,
  };
}

/** Which language a guest path is in, and the path its builder takes (a .ts file or a package dir). */
function guestKind(path: string): { language: 'assemblyscript' | 'rust' | 'javascript'; path: string } {
  if (!statSync(path).isDirectory()) {
    if (path.endsWith('.ts')) return { language: 'assemblyscript', path };
    if (path.endsWith('Cargo.toml')) return { language: 'rust', path: resolve(path, '..') };
    throw new BuildError(path, 'expected an AssemblyScript .ts file, a directory with index.ts, or a Rust package directory');
  }
  if (isJavaScriptGuest(path)) return { language: 'javascript', path };
  const hasIndex = existsSync(join(path, 'index.ts'));
  const hasCargo = existsSync(join(path, 'Cargo.toml'));
  if (hasIndex && hasCargo) {
    throw new BuildError(path, 'the directory has both index.ts and Cargo.toml: pass index.ts or Cargo.toml to choose');
  }
  if (hasCargo) {
    if (!isCargoPackage(path)) {
      throw new BuildError(path, 'Cargo.toml here is a workspace without a [package]: pass one member directory');
    }
    return { language: 'rust', path };
  }
  if (hasIndex) return { language: 'assemblyscript', path: join(path, 'index.ts') };
  throw new BuildError(path, 'expected a guest: an AssemblyScript index.ts or a Rust Cargo.toml in this directory');
}

function rustForm(dir: string): GuestForm {
  const witDir = join(dir, GUEST_WIT_DIR);
  if (existsSync(witDir) && statSync(witDir).isDirectory()) return 'world';
  const manifest = readManifest(dir);
  return !declaresCdylib(manifest) && declaresBinary(dir, manifest) ? 'command' : 'agent';
}

function isCargoPackage(dir: string): boolean {
  return declaresPackage(readManifest(dir));
}

/**
 * Builds every guest directly under `guestsDir` (a directory with index.ts, or a cargo package) into
 * `<outDir>/<name>.wasm`, one after another (both compilers are CPU-bound; cargo already uses every
 * core). Other directories, such as a cargo workspace root, are skipped.
 * @returns guest name → written component path
 */
export async function buildAllGuests(guestsDir: string, outDir: string): Promise<Record<string, string>> {
  const root = resolve(guestsDir);
  const target = resolve(outDir);
  await mkdir(target, { recursive: true });
  const entries = await readdir(root, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .filter(
      (name) =>
        existsSync(join(root, name, 'index.ts')) ||
        isJavaScriptGuest(join(root, name)) ||
        (existsSync(join(root, name, 'Cargo.toml')) && isCargoPackage(join(root, name))),
    )
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
