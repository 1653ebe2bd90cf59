/**
 * Core module → component: embed the ICE world's WIT (jco `componentEmbed`, utf8 strings), then
 * `componentNew`. wit-component keeps only the imports the core module actually has, so a component
 * imports exactly the interfaces its guest uses.
 */
import { componentEmbed, componentNew } from '@bytecodealliance/jco';
import { ICE_PACKAGE, ICE_WIT_VERSION, ICE_WORLD, worldWitSource } from '../core/world.js';
import { BuildError } from './errors.js';

// The repo compiles with lib ES2022 and Node's types, which do not declare the WebAssembly global; these
// are the few members used here.
interface WasmModuleApi {
  Module: {
    new (bytes: Uint8Array): object;
    imports(module: object): { module: string; name: string; kind: string }[];
    exports(module: object): { name: string; kind: string }[];
  };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmModuleApi }).WebAssembly;

/** The exports a guest core module must have (wasm32 canonical ABI, world `agent`). */
const REQUIRED_CORE_EXPORTS = ['memory', 'cabi_realloc', 'run', 'cabi_post_run'] as const;

/**
 * Checks the core module's import/export shape before componentizing, so a wrong module gets an
 * error that names the culprit (e.g. `core module imports env.abort`) instead of wit-component's.
 */
function checkCoreModule(core: Uint8Array, origin: string): void {
  let module: object;
  try {
    module = new wasm.Module(core);
  } catch (e) {
    throw new BuildError(origin, `not a valid core WebAssembly module: ${(e as Error).message}`);
  }
  const prefix = `${ICE_PACKAGE}/`;
  const suffix = `@${ICE_WIT_VERSION}`;
  const foreign = wasm.Module.imports(module).filter(
    (i) => !(i.module.startsWith(prefix) && i.module.endsWith(suffix)),
  );
  if (foreign.length > 0) {
    const names = foreign.map((i) => `${i.module}.${i.name}`).join(', ');
    throw new BuildError(
      origin,
      `core module imports ${names}: only ${prefix}<interface>${suffix} imports can be satisfied ` +
        '(AssemblyScript: avoid Math.random, Date, trace and console, which import from "env")',
    );
  }
  const exports = new Set(wasm.Module.exports(module).map((e) => e.name));
  const missing = REQUIRED_CORE_EXPORTS.filter((name) => !exports.has(name));
  if (missing.length > 0) {
    throw new BuildError(origin, `core module does not export ${missing.join(', ')}`);
  }
}

/**
 * Turns a core module that follows the ICE world's canonical ABI into a component.
 * @param core the core wasm module bytes
 * @param origin what is being built, for error messages (a path)
 */
export async function componentize(core: Uint8Array, origin: string): Promise<Uint8Array> {
  checkCoreModule(core, origin);
  let embedded: Uint8Array;
  try {
    embedded = await componentEmbed({
      binary: core,
      witSource: worldWitSource(),
      world: ICE_WORLD,
      stringEncoding: 'utf8',
    });
  } catch (e) {
    throw new BuildError(origin, `embedding the ${ICE_PACKAGE} WIT failed: ${errorText(e)}`);
  }
  try {
    return await componentNew(embedded, []);
  } catch (e) {
    throw new BuildError(origin, `creating the component failed: ${errorText(e)}`);
  }
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
