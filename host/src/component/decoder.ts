/**
 * The wasm-tools decoder that inspection runs on untrusted components, kept renewable. wasm-tools runs
 * as a component inside jco; when it panics (a wasm trap) on a hostile input, that instance can never be
 * entered again ("cannot enter component instance"), which would refuse every later component in this
 * process. So a trap discards the instance, and the next call loads a fresh one (a module URL with a new
 * query is a new module instance). jco's own import of the same vendor module is left alone: it only
 * ever sees the world's WIT, which ICE writes.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type { Decoder } from './inspect.js';

interface WasmTools {
  componentWit(bytes: Uint8Array): string;
  print(bytes: Uint8Array): string;
}

const WASM_TOOLS = (() => {
  const fromJco = createRequire(import.meta.resolve('@bytecodealliance/jco'));
  return new URL('../vendor/wasm-tools.js', pathToFileURL(fromJco.resolve('@bytecodealliance/jco-transpile/wasm-tools')));
})();

let generation = 0;
let current: Promise<WasmTools> | undefined;

function tools(): Promise<WasmTools> {
  current ??= (async () => {
    const module = (await import(`${WASM_TOOLS.href}?instance=${generation}`)) as { $init: Promise<void>; tools: WasmTools };
    await module.$init;
    return module.tools;
  })();
  return current;
}

async function call<T>(use: (tools: WasmTools) => T): Promise<T> {
  const instance = await tools();
  try {
    return use(instance);
  } catch (error) {
    if (error instanceof WebAssembly.RuntimeError) {
      generation++;
      current = undefined;
    }
    throw error;
  }
}

/** How many times a trapped decoder was replaced (for tests and diagnostics). */
export function decoderGeneration(): number {
  return generation;
}

export const renewableDecoder: Decoder = {
  componentWit: (bytes) => call((t) => t.componentWit(bytes)),
  print: (bytes) => call((t) => t.print(bytes)),
};
