/**
 * prepare: turn an admitted component into something we can instantiate once per run.
 *
 * jco transpiles it in `instantiation: 'sync'` mode, so the generated glue imports nothing and the
 * host hands it every import; the output is cached by component digest (and jco version) in memory
 * and in a cache directory, and its core modules are compiled once. Inspection happens here too
 * (`inspect`), so that a component seen before is neither decoded nor checked again, and a new one
 * has its declared import types compared with the ICE world's (signatures.ts) before anything else.
 *
 * Every core module is metered once, right after the transpile (meter.ts: fuel at function entries,
 * exits and loop headers, and a flag on refused memory growth), and the cache holds the metered
 * modules. The memory cap depends on the policy, so it is applied per load: each defined memory's
 * maximum is rewritten to `limits.memoryMiB` (a fast binary patch) and the result compiled once per
 * distinct cap.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { renewableDecoder } from './decoder.js';
import { LoadError } from './errors.js';
import { FootprintTally, MemoryCapError, MeterError, capModule, footprintOf, type MeterVariant } from './core-binary.js';
import { sha256Hex } from '../core/digest.js';
import { inspectComponent, type ComponentInfo } from './inspect.js';
import { importSignatures, signatureMismatches, type ImportSignatures } from './signatures.js';
import { ICE_PACKAGE, ICE_WIT_VERSION, ICE_WORLD, worldWitSource } from '../core/world.js';

/** What jco's generated `instantiate` returns for the ICE world. */
export interface AgentExports {
  run(input: string): string;
}

/** A run's meter: what the metered core modules import from `ice:meter`. */
export interface Meter {
  /** i64, mutable: fuel left in the current slice; metered code calls `refuel` when it goes below 0. */
  readonly fuel: WebAssembly.Global;
  /** i32, mutable: set to 1 when a memory.grow was refused. */
  readonly memoryRefused: WebAssembly.Global;
  /** i32, mutable: pages the component instance may still take; starts at limits.memoryMiB (core-binary.ts). */
  readonly memoryBudget: WebAssembly.Global;
  /** Adds the next slice of fuel, leaves fuel negative when the budget is spent, or throws at the deadline. */
  readonly refuel: () => void;
}

export type GeneratedInstantiate = (
  getCoreModule: (path: string) => WebAssembly.Module,
  imports: Record<string, unknown>,
  instantiateCore?: (module: WebAssembly.Module, imports: WebAssembly.Imports) => WebAssembly.Instance,
) => AgentExports;

export interface PreparedComponent {
  readonly digest: string;
  /** Where the transpiled output came from on this load. */
  readonly source: 'memory' | 'disk' | 'transpiled';
  readonly prepareMs: number;
  /** The generated glue as an importable URL (a file in the cache, or data:), for worker threads. */
  readonly glueUrl: string;
  /** jco's generated `instantiate` (sandbox/instantiate.ts wires it to a run). */
  readonly generated: GeneratedInstantiate;
  /** The core modules, compiled with every defined memory capped at `memoryMiB` (memoized per cap). */
  modules(memoryMiB: number): ReadonlyMap<string, WebAssembly.Module>;
}

const WASM_PAGE = 64 * 1024;
const PAGES_PER_MIB = (1024 * 1024) / WASM_PAGE;

const require = createRequire(import.meta.url);
const JCO_VERSION: string = JSON.parse(
  readFileSync(join(dirname(require.resolve('@bytecodealliance/jco')), '..', 'package.json'), 'utf8'),
).version;
/** Bump when the transpile options, the metering or the cache layout change. */
const CACHE_FORMAT = 7;
const TRANSPILE_OPTIONS = { name: 'agent', instantiation: 'sync', noTypescript: false } as const;

interface Entry {
  instantiate: GeneratedInstantiate;
  glueUrl: string;
  /** Metered core module bytes, by the path the glue asks for. */
  cores: Map<string, Uint8Array>;
  /** Compiled core modules per memory cap (pages). */
  compiled: Map<number, Map<string, WebAssembly.Module>>;
  /** The core module each instantiation in the glue uses, in order (see instantiationPlan). */
  plan: readonly string[];
}

/** jco (and its wasm-tools build) is large: loaded only when a component is not in the cache. */
const jco = () => import('@bytecodealliance/jco');
const INFO = 'info.json';

let world: Promise<ImportSignatures> | undefined;

/**
 * The ICE world's own declarations, from a component synthesized from wit/ that imports all of it.
 * Derived from wit/ alone, so one per process (pure data, no authority in it).
 */
function worldSignatures(): Promise<ImportSignatures> {
  world ??= (async () => {
    const { componentEmbed, componentNew, print } = await jco();
    const embedded = await componentEmbed({ dummy: true, witSource: worldWitSource(), world: ICE_WORLD, stringEncoding: 'utf8' });
    return importSignatures(await print(await componentNew(embedded, [])));
  })();
  return world;
}

export class ComponentCache {
  private readonly entries = new Map<string, Entry>();
  private readonly infos = new Map<string, ComponentInfo>();

  /** @param dir on-disk cache directory, or undefined for memory only */
  constructor(readonly dir: string | undefined) {}

  /**
   * The component's imports and exports. A component already prepared once (same digest) is not
   * decoded again: its inspection was cached with its transpiled output, and only a component that
   * passed every check is ever cached.
   */
  async inspect(bytes: Uint8Array, origin: string): Promise<ComponentInfo> {
    const digest = sha256Hex(bytes);
    for (const variant of METER_VARIANTS) {
      const key = cacheKey(digest, variant);
      const known = this.infos.get(key) ?? (this.dir ? readInfo(join(this.dir, key), digest) : undefined);
      if (known) return known;
    }
    const info = await inspectComponent(bytes, origin, renewableDecoder);
    const mismatches = signatureMismatches(info.signatures, await worldSignatures());
    if (mismatches.length > 0) {
      throw new LoadError(
        'signature-mismatch',
        origin,
        `${origin} declares ICE imports that differ from the ${ICE_PACKAGE}@${ICE_WIT_VERSION} world in wit/: ` +
          `${mismatches.join('; ')}; rebuild the guest against this version of the world`,
      );
    }
    return info;
  }

  /**
   * `variant`: how out-of-fuel is metered (core-binary.ts): `trap` for worker runs, `preemptible` for
   * runs on the calling thread (in-process, replay), which need refuel to see their deadline.
   */
  async prepare(bytes: Uint8Array, info: ComponentInfo, origin: string, variant: MeterVariant = 'trap'): Promise<PreparedComponent> {
    const started = performance.now();
    const digest = info.digest;
    const key = cacheKey(digest, variant);
    let source: PreparedComponent['source'] = 'memory';
    let entry = this.entries.get(key);
    if (!entry) {
      const cached = this.dir ? readCached(join(this.dir, key)) : undefined;
      source = cached ? 'disk' : 'transpiled';
      const files = cached ?? (await this.transpile(bytes, origin, variant));
      if (!cached && this.dir) writeCached(this.dir, key, files, info);
      entry = await load(files, this.dir ? join(this.dir, key) : undefined, origin);
      this.entries.set(key, entry);
      this.infos.set(key, info);
    }
    const ready = entry;
    const modules = (memoryMiB: number): ReadonlyMap<string, WebAssembly.Module> => compiledFor(ready, memoryMiB, origin);
    return {
      digest,
      source,
      prepareMs: performance.now() - started,
      glueUrl: ready.glueUrl,
      generated: ready.instantiate,
      modules,
    };
  }

  /**
   * Drops what prepare cached for this digest (memory and disk): a component refused after it was
   * prepared (over the memory budget of the policy it came with) leaves nothing behind.
   */
  forget(digest: string): void {
    for (const variant of METER_VARIANTS) {
      const key = cacheKey(digest, variant);
      this.entries.delete(key);
      this.infos.delete(key);
      if (this.dir) rmSync(join(this.dir, key), { recursive: true, force: true });
    }
  }

  private async transpile(bytes: Uint8Array, origin: string, variant: MeterVariant): Promise<Record<string, Uint8Array>> {
    const { transpile } = await jco();
    let files: Record<string, Uint8Array>;
    try {
      files = (await transpile(bytes, TRANSPILE_OPTIONS)).files;
    } catch (error) {
      const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
      throw new LoadError('prepare-failed', origin, `${origin} could not be prepared (jco transpile): ${reason}`);
    }
    files['agent.js'] = withoutJspiProbes(strictUtf8(files['agent.js'], origin));
    // binaryen is loaded only here, when a component is new to the cache.
    const { meterCoreModule } = await import('./meter.js');
    for (const [name, core] of Object.entries(files)) {
      if (!name.endsWith('.wasm')) continue;
      try {
        files[name] = meterCoreModule(core, variant);
      } catch (error) {
        if (!(error instanceof MeterError)) throw error;
        throw new LoadError('prepare-failed', origin, `${origin} could not be prepared (fuel metering of ${name}): ${error.message}`);
      }
    }
    return files;
  }
}

/** jco 1.35's glue decodes guest strings with a lenient TextDecoder, as it writes it. */
const LENIENT_DECODER = 'const TEXT_DECODER_UTF8 = new TextDecoder();';
const STRICT_DECODER = "const TEXT_DECODER_UTF8 = new TextDecoder('utf-8', { fatal: true });";

/**
 * The canonical ABI traps on a string that is not valid UTF-8; jco's glue would quietly replace the
 * bad bytes with U+FFFD, so the host would act on (and record) text the guest never sent. The glue's
 * decoder is made fatal: such a string fails the lifting, which traps the run with guest blame.
 * If the glue no longer has the decoder as expected, preparing fails rather than run lenient. Glue
 * that decodes no guest string at all (a component passing none to the host) has no decoder to fix.
 */
function strictUtf8(glue: Uint8Array | undefined, origin: string): Uint8Array {
  const text = glue === undefined ? '' : Buffer.from(glue).toString('utf8');
  if (glue !== undefined && !text.includes('TextDecoder')) return glue;
  if (text.split(LENIENT_DECODER).length !== 2) {
    throw new LoadError('prepare-failed', origin, `${origin} could not be prepared: jco's generated glue does not decode strings as this host expects (jco ${JCO_VERSION})`);
  }
  return Buffer.from(text.replace(LENIENT_DECODER, STRICT_DECODER), 'utf8');
}

/**
 * jco 1.35's glue probes for JSPI at every instantiation, once per realloc and post-return export:
 * `try { x = WebAssembly.promising(f) } catch { x = f }`. Node 20 has no `WebAssembly.promising`, so
 * each probe throws, and inside the instantiation that costs ~0.45 ms (measured: 6 probes were 2.7 ms of
 * a 4.5 ms call of calc's `add`). The same choice, made once per glue without throwing:
 */
const JSPI_PROBE = 'WebAssembly.promising(';
const JSPI_ONCE = "const ICE_PROMISING = typeof WebAssembly.promising === 'function' ? WebAssembly.promising : (f) => f;\n";

function withoutJspiProbes(glue: Uint8Array): Uint8Array {
  const text = Buffer.from(glue).toString('utf8');
  if (!text.includes(JSPI_PROBE)) return glue;
  return Buffer.from(JSPI_ONCE + text.split(JSPI_PROBE).join('ICE_PROMISING('), 'utf8');
}

const MANIFEST = 'manifest.json';

const METER_VARIANTS: readonly MeterVariant[] = ['trap', 'preemptible'];

function cacheKey(digest: string, variant: MeterVariant): string {
  return `${digest}-jco${JCO_VERSION}-f${CACHE_FORMAT}${variant === 'preemptible' ? '-p' : ''}`;
}

function readInfo(dir: string, digest: string): ComponentInfo | undefined {
  try {
    const manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as { files: Record<string, string> };
    const text = readFileSync(join(dir, INFO));
    const info = JSON.parse(text.toString('utf8')) as ComponentInfo;
    // Admission trusts this inspection, so it must be the one written with this entry.
    return info.digest === digest && manifest.files[INFO] === sha256Hex(text) ? info : undefined;
  } catch {
    return undefined;
  }
}

/** Cached files, or undefined when absent or not whole (a crash mid-write, a disk error). */
function readCached(dir: string): Record<string, Uint8Array> | undefined {
  try {
    const manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as { files: Record<string, string> };
    const files: Record<string, Uint8Array> = {};
    for (const [name, digest] of Object.entries(manifest.files)) {
      const bytes = readFileSync(join(dir, name));
      if (sha256Hex(bytes) !== digest) return undefined;
      files[name] = bytes;
    }
    return files;
  } catch {
    return undefined;
  }
}

/** Written to a temporary directory and renamed into place, so readers never see half an entry. */
function writeCached(root: string, key: string, files: Record<string, Uint8Array>, info: ComponentInfo): void {
  const target = join(root, key);
  const temporary = join(root, `.${key}.${process.pid}.${Date.now()}`);
  const manifest: Record<string, string> = {};
  try {
    for (const [name, bytes] of Object.entries(files)) {
      const path = join(temporary, cacheName(name));
      // Owner-only: this directory holds JavaScript the host will import.
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, bytes);
      manifest[cacheName(name)] = sha256Hex(bytes);
    }
    const infoText = JSON.stringify(info);
    writeFileSync(join(temporary, INFO), infoText);
    manifest[INFO] = sha256Hex(infoText);
    // The manifest goes last: an entry is whole only once it exists.
    writeFileSync(join(temporary, MANIFEST), JSON.stringify({ jco: JCO_VERSION, files: manifest }, null, 2));
    // The cache may be shared (a per-user cache, several processes): a whole entry another process wrote
    // stays — its glue may be being imported right now, and a key always holds the same files. Only a
    // damaged one is replaced.
    if (existsSync(target)) {
      if (readCached(target) !== undefined) {
        rmSync(temporary, { recursive: true, force: true });
        return;
      }
      rmSync(target, { recursive: true, force: true });
    }
    renameSync(temporary, target);
  } catch {
    // A cache that cannot be written only costs a transpile next time.
    rmSync(temporary, { recursive: true, force: true });
  }
}

/** The generated glue is an ES module; `.mjs` makes Node load it as one wherever the cache lives. */
function cacheName(name: string): string {
  return name === 'agent.js' ? 'agent.mjs' : name;
}

async function load(files: Record<string, Uint8Array>, dir: string | undefined, origin: string): Promise<Entry> {
  const cores = new Map<string, Uint8Array>();
  for (const [name, bytes] of Object.entries(files)) {
    if (name.endsWith('.wasm')) cores.set(name, bytes);
  }
  const glue = files['agent.mjs'] ?? files['agent.js'];
  if (!glue) throw new Error('jco transpile produced no agent.js');
  const glueUrl =
    dir && existsSync(join(dir, 'agent.mjs'))
      ? pathToFileURL(join(dir, 'agent.mjs')).href
      : `data:text/javascript;base64,${Buffer.from(glue).toString('base64')}`;
  const plan = instantiationPlan(Buffer.from(glue).toString('utf8'), cores, origin);
  const module = (await import(glueUrl)) as { instantiate: GeneratedInstantiate };
  return { instantiate: module.instantiate, glueUrl, cores, compiled: new Map(), plan };
}

const DECLARED_MODULE = /\bconst (module\d+) = getCoreModule\('([^']+)'\);/g;
const INSTANTIATION = /\binstantiateCore\(([^,)]*)/g;

/**
 * The core module of each instantiation jco's glue performs, in order. In `sync` mode the glue is
 * straight-line code with one `instantiateCore(moduleN, ...)` per core instance of the component, so
 * the component's footprint is known at load, before anything is instantiated. A glue this does not
 * recognise is refused: the load-time check must not be silently skipped (instantiateGenerated checks
 * again at run time regardless).
 */
function instantiationPlan(glue: string, cores: ReadonlyMap<string, Uint8Array>, origin: string): string[] {
  const declared = new Map<string, string>();
  for (const [, variable, path] of glue.matchAll(DECLARED_MODULE)) declared.set(variable!, path!);
  const plan: string[] = [];
  for (const [, argument] of glue.matchAll(INSTANTIATION)) {
    const path = declared.get(argument!.trim());
    if (path === undefined || !cores.has(path)) {
      throw new LoadError('prepare-failed', origin, `${origin} could not be prepared: jco's generated glue instantiates a core module this host cannot account for (jco ${JCO_VERSION})`);
    }
    plan.push(path);
  }
  return plan;
}

/**
 * @throws LoadError (memory-limit) when a core module needs more initial memory than the cap, or the
 *   component's core instances together are over the budget or the host's count caps.
 */
function compiledFor(entry: Entry, memoryMiB: number, origin: string): Map<string, WebAssembly.Module> {
  const pages = memoryMiB * PAGES_PER_MIB;
  let modules = entry.compiled.get(pages);
  if (modules) return modules;
  modules = new Map();
  for (const [name, bytes] of entry.cores) {
    try {
      modules.set(name, new WebAssembly.Module(capModule(bytes, pages) as Uint8Array<ArrayBuffer>));
    } catch (error) {
      if (error instanceof MeterError) {
        throw new LoadError('prepare-failed', origin, `${origin} could not be prepared (memory cap of ${name}): ${error.message}`);
      }
      if (!(error instanceof MemoryCapError)) throw error;
      throw new LoadError(
        'memory-limit',
        origin,
        `${origin} needs ${Math.ceil(error.initialPages / PAGES_PER_MIB)} MiB of initial memory, over limits.memoryMiB ` +
          `(${memoryMiB} MiB): raise limits.memoryMiB in the policy`,
      );
    }
  }
  const tally = new FootprintTally(pages);
  // Totals over every instance, so the message names what the whole component needs.
  for (const name of entry.plan) tally.add(footprintOf(modules.get(name)!));
  const refusal = tally.check();
  if (refusal !== undefined) throw new LoadError('memory-limit', origin, `${origin} is refused: ${refusal}`);
  entry.compiled.set(pages, modules);
  return modules;
}
