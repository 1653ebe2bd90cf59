/**
 * A Rust guest with its own WIT world: a cargo cdylib beside a `wit/` directory holding its WIT package.
 * The world may import ICE interfaces (`import ice:agent/kv@0.1.0;`) and export anything WIT can say;
 * the core module lowers it by hand (or with the SDK for the imports), as examples/calc does.
 */
import { componentEmbed, componentNew } from '@bytecodealliance/jco';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { iceWorld, readManifest } from './cargo-manifest.js';
import { withDocs } from './component-docs.js';
import { BuildError } from './errors.js';
import { GUEST_WIT_DIR, readGuestWit } from './guest-wit.js';
import { compileCdylib, type RustBuild } from './rust.js';

export interface RustWorldBuild extends RustBuild {
  /** `example:calc/calc@0.1.0`. */
  world: string;
}

/**
 * @throws BuildError for a `wit/` that names no single world, cargo's diagnostics, or what
 *   wit-component says of a core module that does not match the world.
 */
export async function buildRustWorld(dir: string): Promise<RustWorldBuild> {
  const packageDir = resolve(dir);
  // wit/ is checked first: a mistake there is found without waiting for cargo.
  const wit = readGuestWit(packageDir, iceWorld(readManifest(packageDir)));
  const { core, compileMs } = await compileCdylib(packageDir);

  const componentStarted = performance.now();
  const qualified = wit.qualifiedWorld;
  let embedded: Uint8Array;
  try {
    embedded = await componentEmbed({ binary: core, witSource: wit.witSource, world: wit.world, stringEncoding: 'utf8' });
  } catch (e) {
    throw new BuildError(packageDir, `embedding ${GUEST_WIT_DIR}/ (world ${qualified}) failed: ${errorText(e)}`);
  }
  let component: Uint8Array;
  try {
    component = await componentNew(embedded, []);
  } catch (e) {
    throw new BuildError(packageDir, `creating the component of world ${qualified} failed: ${errorText(e)}${exportHint(errorText(e))}`);
  }
  component = withDocs(component, wit.docs, wit.world);
  return { core, component, world: qualified, timings: { compileMs, componentizeMs: performance.now() - componentStarted } };
}

/** wit-component names a missing export by its core name; say how a Rust crate provides one. */
function exportHint(message: string): string {
  if (!/does not export|missing.*export|export.*not found/i.test(message)) return '';
  return '\nhint: export each world function from Rust as `#[export_name = "<name>"] extern "C" fn …` ' +
    '(an interface function as "<namespace>:<package>/<interface>@<version>#<name>"), lowered by the canonical ABI; see examples/calc/src/exports.rs';
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
