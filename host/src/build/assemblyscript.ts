/**
 * AssemblyScript guest → core module → component, all in memory, with the compiler's JS API.
 *
 * The guest file exports `run(input: string): Result<string, string>` and imports the SDK as `"ice"`.
 * The build compiles a generated entry module that sits (virtually) beside the guest, imports that
 * `run` and exports the lowered canonical-ABI surface: `run(ptr, len) -> retptr`, `cabi_post_run`,
 * `cabi_realloc` (plus `memory`). Only the generated entry is an asc entry file, so nothing else the
 * guest exports leaks into the core module.
 */
import asc from 'assemblyscript/asc';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { componentize } from './component.js';
import { BuildError } from './errors.js';

/** The module specifier guests import the SDK by: `import { log } from "ice"`. */
export const SDK_SPECIFIER = 'ice';

/** Where asc is told (`--path`) that packages live; the build's readFile maps it to the SDK. */
const VIRTUAL_PACKAGES = resolve('/', '__ice_sdk_packages__');
const VIRTUAL_SDK = join(VIRTUAL_PACKAGES, SDK_SPECIFIER);
/** The generated entry's file name; it sits beside the guest so `./<guest>` resolves. */
const ENTRY_NAME = '__ice_entry__.ts';
const CORE_NAME = 'core.wasm';
/** The SDK's abort (sdk/assemblyscript/assembly/abort.ts) by its internal asc name. */
const SDK_ABORT = `~lib/${SDK_SPECIFIER}/abort/iceAbort`;

/**
 * Compiler flags.
 * - `-O3`: measured on the example guests, `-Os` made core modules 15-20% smaller (hello 9.9 → 8.0 KB)
 *   but ran hello about twice as slow (95 → 190 µs per run through jco) and compiled no faster.
 * - `--runtime incremental`: the runtime the ABI design was proven with (see ARCHITECTURE.md).
 * - No `--noAssert`: assertions guard the allocator and the lifting of host data; a failed one ends
 *   in the SDK abort, which logs it, instead of silently corrupting memory. (Their cost was not
 *   measured separately; the -O3 numbers above include them.)
 */
const ASC_FLAGS: readonly string[] = [
  '-O3',
  '--runtime', 'incremental',
  '--use', `abort=${SDK_ABORT}`,
  '--noColors',
  '--path', VIRTUAL_PACKAGES,
];

let cachedSdkDir: string | undefined;

/** sdk/assemblyscript/assembly, found relative to this module both from sources and from dist/. */
export function sdkDirectory(): string {
  if (cachedSdkDir !== undefined) return cachedSdkDir;
  let dir = fileURLToPath(new URL('.', import.meta.url));
  for (let i = 0; i < 7; i++) {
    const candidate = join(dir, 'sdk', 'assemblyscript', 'assembly');
    if (existsSync(join(candidate, 'index.ts'))) {
      cachedSdkDir = candidate;
      return candidate;
    }
    dir = join(dir, '..');
  }
  throw new Error(
    'ICE installation is incomplete: sdk/assemblyscript/assembly/index.ts was not found above ' +
      fileURLToPath(import.meta.url),
  );
}

/** The entry module compiled around a guest: it adapts the guest's `run` to the canonical ABI. */
function entrySource(guestModule: string): string {
  return [
    `import { run as __iceUserRun } from ${JSON.stringify('./' + guestModule)};`,
    `import { __iceRealloc, __iceLiftRunInput, __iceLowerRunResult, __icePostRun } from "${SDK_SPECIFIER}/entry";`,
    'export function cabi_realloc(oldPtr: usize, oldSize: usize, align: usize, newSize: usize): usize {',
    '  return __iceRealloc(oldPtr, oldSize, align, newSize);',
    '}',
    'export function run(ptr: usize, len: usize): usize {',
    '  return __iceLowerRunResult(__iceUserRun(__iceLiftRunInput(ptr, len)));',
    '}',
    'export function cabi_post_run(ret: usize): void {',
    '  __icePostRun(ret);',
    '}',
    '',
  ].join('\n');
}

export interface AssemblyScriptBuild {
  /** The core wasm module asc produced. */
  core: Uint8Array;
  /** The component (core module + ICE world WIT). */
  component: Uint8Array;
  timings: { compileMs: number; componentizeMs: number };
}

/**
 * Compiles an AssemblyScript guest to a core module and a component.
 * @param entryFile the guest's .ts file (anywhere on disk); it must export
 *   `run(input: string): Result<string, string>` and may import the SDK as `"ice"`.
 * @throws BuildError with asc's diagnostics (file:line) when compilation fails.
 */
export async function buildAssemblyScript(entryFile: string): Promise<AssemblyScriptBuild> {
  const guestPath = resolve(entryFile);
  if (!guestPath.endsWith('.ts')) throw new BuildError(guestPath, 'an AssemblyScript guest must be a .ts file');
  if (!existsSync(guestPath)) throw new BuildError(guestPath, 'no such file');
  const guestDir = dirname(guestPath);
  const entryPath = join(guestDir, ENTRY_NAME);
  const entry = entrySource(basename(guestPath, '.ts'));
  const sdkDir = sdkDirectory();

  const outputs = new Map<string, Uint8Array | string>();
  let stderrText = '';
  let stdoutText = '';
  const decoder = new TextDecoder();
  const text = (chunk: Uint8Array | string): string => (typeof chunk === 'string' ? chunk : decoder.decode(chunk));

  const readSource = async (filename: string, baseDir: string): Promise<string | null> => {
    const path = resolve(baseDir, filename);
    if (path === entryPath) return entry;
    // Builds are hermetic: no asconfig.json from around the guest changes the flags.
    if (basename(path) === 'asconfig.json') return null;
    if (path.startsWith(VIRTUAL_SDK + sep)) return readOrNull(join(sdkDir, path.slice(VIRTUAL_SDK.length + 1)));
    if (path.startsWith(VIRTUAL_PACKAGES + sep)) return null;
    // asc searches node_modules before --path; never let a node_modules/ice shadow the SDK.
    if (path.includes(`${sep}node_modules${sep}${SDK_SPECIFIER}${sep}`)) return null;
    return readOrNull(path);
  };

  const started = performance.now();
  const result = await asc.main([ENTRY_NAME, '--baseDir', guestDir, '--outFile', CORE_NAME, ...ASC_FLAGS], {
    readFile: readSource,
    writeFile: (filename: string, contents: Uint8Array | string) => {
      outputs.set(filename, contents);
    },
    listFiles: () => [],
    stdout: { write: (chunk: Uint8Array | string) => { stdoutText += text(chunk); } },
    stderr: { write: (chunk: Uint8Array | string) => { stderrText += text(chunk); } },
  });
  const compileMs = performance.now() - started;

  if (result.error) {
    throw new BuildError(guestPath, compileFailure(stderrText || stdoutText, result.error, guestDir));
  }
  const core = outputs.get(CORE_NAME);
  if (!(core instanceof Uint8Array)) {
    throw new BuildError(guestPath, 'the AssemblyScript compiler produced no module');
  }

  const componentStarted = performance.now();
  const component = await componentize(core, guestPath);
  const componentizeMs = performance.now() - componentStarted;
  return { core, component, timings: { compileMs, componentizeMs } };
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

/**
 * asc's diagnostics, with locations made absolute (`in /path/guest.ts:3:16`) and a hint when they
 * point at the generated entry (a missing or mistyped `run`).
 */
function compileFailure(diagnostics: string, error: Error, guestDir: string): string {
  const body = diagnostics
    .split('\n')
    .filter((line) => !line.startsWith('FAILURE '))
    .map((line) =>
      line.replace(/└─ in (.+)\((\d+),(\d+)\)$/, (_all, file: string, line: string, col: string) => {
        const where = file.startsWith('~lib/') || file === ENTRY_NAME ? file : resolve(guestDir, file);
        return `└─ in ${where}:${line}:${col}`;
      }),
    )
    .join('\n')
    .trim();
  let reason = `AssemblyScript compilation failed (${error.message})`;
  if (body.length > 0) reason += `:\n${body}`;
  if (body.includes(`~lib/${SDK_SPECIFIER}/`)) reason += `\n(~lib/${SDK_SPECIFIER}/ is the ICE SDK, ${sdkDirectory()})`;
  if (body.includes(ENTRY_NAME)) {
    reason +=
      `\nhint: ${ENTRY_NAME} is generated by the build; the guest must ` +
      `\`export function run(input: string): Result<string, string>\` (Result from "${SDK_SPECIFIER}")`;
  }
  return reason;
}
