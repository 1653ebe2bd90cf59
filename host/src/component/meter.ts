/**
 * Metering of core wasm modules: CPU fuel and refused memory growth, enforced inside the guest's own code.
 *
 * meterCoreModule (once per component, the result is cached) instruments a core module with two binaryen
 * passes and turns the imports they add into functions defined in the module:
 * - `log-execution` places a hook at every function entry, function exit/return and loop header; the hook
 *   takes one unit from the `ice:meter.fuel` global and traps once it is below zero. Fuel is counted per
 *   control-flow point rather than per instruction: coarser, but it bounds every loop and every recursion.
 * - `instrument-memory`, restricted to `memory.grow`, wraps each grow; the hook raises
 *   `ice:meter.memory_refused` when the grow returned -1, so the host can tell a guest that ran out of
 *   memory from one that trapped for another reason.
 * The output is not byte-for-byte reproducible: log-execution numbers its points with a process-wide
 * counter, and that number is the (ignored) argument of every fuel hook call.
 *
 * capMemories (at every load, with the policy's limit) lowers the maximum of every defined memory, so the
 * engine itself refuses growth past the cap. It is a binary patch of the memory section, not a binaryen
 * round trip, because it runs per load.
 */
import binaryen from 'binaryen';

/** Module name of the imports the metered code uses; the host supplies them per instance. */
export const METER_MODULE = 'ice:meter';
/** `ice:meter.fuel`: mutable i64 global, the remaining fuel (shared by all core modules of a component instance). */
export const FUEL_GLOBAL = 'fuel';
/** `ice:meter.memory_refused`: mutable i32 global, set to 1 by metered code when a memory.grow returned -1. */
export const MEMORY_REFUSED_GLOBAL = 'memory_refused';

/** A core module that cannot be metered or capped; the message says why. */
export class MeterError extends Error {
  override readonly name = 'MeterError';
}

const PAGES_PER_MIB = 16;
/** A wasm32 memory has at most 2^16 pages of 64 KiB (4 GiB). */
const MAX_PAGES = 65_536;

/** A defined memory needs more initial pages than the cap allows. */
export class MemoryCapError extends Error {
  override readonly name = 'MemoryCapError';
  constructor(
    readonly initialPages: number,
    readonly maxPages: number,
  ) {
    // Rounded up: the whole number of MiB a limit would need for this memory to fit.
    super(
      `needs ${Math.ceil(initialPages / PAGES_PER_MIB)} MiB of initial memory, ` +
        `over the limit of ${maxPages / PAGES_PER_MIB} MiB`,
    );
  }
}

// The hooks the passes call, by the fixed internal (and `env.*` import) names binaryen gives them.
const LOG_EXECUTION = 'log_execution';
const MEMORY_GROW_PRE = 'memory_grow_pre';
const MEMORY_GROW_POST = 'memory_grow_post';
const NAMED_HOOKS: readonly string[] = [LOG_EXECUTION, MEMORY_GROW_PRE, MEMORY_GROW_POST];
/** Internal names of the two `ice:meter` global imports; unlikely in a guest, and checked anyway. */
const FUEL_INTERNAL = '__ice_meter_fuel';
const REFUSED_INTERNAL = '__ice_meter_memory_refused';

/**
 * Instruments a core module (binary) with fuel metering and a flag on refused `memory.grow`.
 * The result imports what `bytes` imports plus the globals `ice:meter.fuel` (mutable i64) and
 * `ice:meter.memory_refused` (mutable i32); a module that defines no functions is returned as is.
 * Only the hooks and functions as small as them are inlined (see inlineHooks); apart from fuel and the
 * flag the module behaves exactly as before.
 * @throws MeterError when the module does not parse, already imports from `ice:meter` or a hook's
 *   `env.*` name, has a function or global named like what metering adds, uses memory64, or when the
 *   instrumented module does not validate.
 */
export function meterCoreModule(bytes: Uint8Array): Uint8Array {
  const sections = sectionsOf(bytes);
  for (const section of sections) {
    if (section.id === IMPORT_SECTION) checkImports(bytes, section);
    // Read only for its checks: it refuses memory64, which capMemories could not cap either.
    if (section.id === MEMORY_SECTION) readMemories(bytes, section);
  }
  const module = parse(bytes);
  try {
    refuseNameClashes(module);
    if (!definesFunctions(bytes, sections)) return bytes;
    module.addGlobalImport(FUEL_INTERNAL, METER_MODULE, FUEL_GLOBAL, binaryen.i64, true);
    module.addGlobalImport(REFUSED_INTERNAL, METER_MODULE, MEMORY_REFUSED_GLOBAL, binaryen.i32, true);
    defineHooks(module, instrument(module));
    inlineHooks(module);
    if (!module.validate()) throw new MeterError('the module does not validate once instrumented (binaryen wrote why to stderr)');
    return emit(module, sections.some((s) => s.customName === 'name'));
  } finally {
    module.dispose();
  }
}

function parse(bytes: Uint8Array): binaryen.Module {
  try {
    return binaryen.readBinaryWithFeatures(bytes, binaryen.Features.All);
  } catch {
    // binaryen throws an opaque C++ exception object; there is no message to pass on.
    throw new MeterError('binaryen cannot parse the module');
  }
}

/**
 * An original `env.log_execution` (say) would sit beside the hook import the pass adds under the same
 * name, and an `ice:meter` import would be fed the host's meter: both make the metered module's
 * imports ambiguous, so they are refused. Imported memories are checked for memory64 here too.
 */
function checkImports(bytes: Uint8Array, section: Section): void {
  const reader = new Reader(bytes, section.contentStart, section.end);
  for (let count = reader.u32(); count > 0; count--) {
    const module = reader.name();
    const name = reader.name();
    const what = `${module}.${name}`;
    if (module === METER_MODULE) throw new MeterError(`it already imports ${what}: only metering may import from ${METER_MODULE}`);
    if (module === 'env' && NAMED_HOOKS.includes(name)) throw new MeterError(`it already imports ${what}, the name of a metering hook`);
    skipImportDescription(reader, what);
  }
  reader.expectEnd('import section');
}

function skipImportDescription(reader: Reader, what: string): void {
  const kind = reader.byte();
  switch (kind) {
    case 0x00: // function: type index
      reader.skipLeb();
      return;
    case 0x01: // table: reference type, limits
      reader.skipValueType();
      reader.skipLimits();
      return;
    case 0x02:
      reader.memoryLimits(`imported memory ${what}`);
      return;
    case 0x03: // global: value type, mutability
      reader.skipValueType();
      reader.byte();
      return;
    case 0x04: // tag: attribute, type index
      reader.byte();
      reader.skipLeb();
      return;
    default:
      throw new MeterError(`import ${what} has an unknown kind 0x${kind.toString(16)}`);
  }
}

/** The passes add functions under fixed names and binaryen aborts the pass if one is taken; so do the globals added here. */
function refuseNameClashes(module: binaryen.Module): void {
  const hooks = passHookNames();
  for (const { name } of functionInfos(module)) {
    if (hooks.has(name)) throw new MeterError(`it has a function named ${name}, a name the metering passes use`);
  }
  for (let i = 0; i < module.getNumGlobals(); i++) {
    const { name } = binaryen.getGlobalInfo(module.getGlobalByIndex(i));
    if (name === FUEL_INTERNAL || name === REFUSED_INTERNAL) throw new MeterError(`it has a global named ${name}, a name metering uses`);
  }
}

let hookNames: ReadonlySet<string> | undefined;

/**
 * Internal names of every import the passes add (instrument-memory adds its load/store/GC hooks whether
 * or not they are used). Which ones depends on the binaryen version, so they are probed once on an empty
 * module rather than listed here.
 */
function passHookNames(): ReadonlySet<string> {
  if (hookNames === undefined) {
    const probe = new binaryen.Module();
    try {
      probe.setFeatures(binaryen.Features.All);
      hookNames = new Set(instrument(probe).map((hook) => hook.name));
    } finally {
      probe.dispose();
    }
  }
  return hookNames;
}

/** Runs both passes and returns the imports they added (told apart by name, not by import module: log-execution borrows an existing one). */
function instrument(module: binaryen.Module): binaryen.FunctionInfo[] {
  const before = new Set(functionInfos(module).map((f) => f.name));
  // Pass arguments are process-wide: start clean, and leave nothing behind for other binaryen users (asc).
  binaryen.clearPassArguments();
  try {
    module.runPasses(['log-execution']);
    binaryen.setPassArgument('instrument-memory', 'memory.grow');
    module.runPasses(['instrument-memory']);
  } finally {
    binaryen.clearPassArguments();
  }
  return functionInfos(module).filter((f) => !before.has(f.name));
}

/**
 * Replaces each added import by a function of the same name and type, so the calls the passes placed
 * now reach it. Imports without a body here are hooks for instructions the filter left alone: unused,
 * so they are only removed (a call left behind would fail validation).
 */
function defineHooks(module: binaryen.Module, added: readonly binaryen.FunctionInfo[]): void {
  for (const hook of added) {
    module.removeFunction(hook.name);
    const body = hookBody(module, hook);
    if (body !== undefined) module.addFunction(hook.name, hook.params, hook.results, [], body);
  }
}

function hookBody(module: binaryen.Module, hook: binaryen.FunctionInfo): binaryen.ExpressionRef | undefined {
  switch (hook.name) {
    case LOG_EXECUTION:
      return takeFuel(module);
    case MEMORY_GROW_PRE: // (id, delta) -> delta
      return module.local.get(1, hook.results);
    case MEMORY_GROW_POST: // (id, result) -> result
      return flagRefusedGrow(module, hook.results);
    default:
      return undefined;
  }
}

/** `fuel -= 1; if (fuel < 0) unreachable` */
function takeFuel(module: binaryen.Module): binaryen.ExpressionRef {
  const fuel = (): binaryen.ExpressionRef => module.global.get(FUEL_INTERNAL, binaryen.i64);
  return module.block(null, [
    module.global.set(FUEL_INTERNAL, module.i64.sub(fuel(), module.i64.const(1n))),
    module.if(module.i64.lt_s(fuel(), module.i64.const(0n)), module.unreachable()),
  ]);
}

/** `if (result == -1) memory_refused = 1; return result` */
function flagRefusedGrow(module: binaryen.Module, type: binaryen.Type): binaryen.ExpressionRef {
  const refused = module.i32.eq(module.local.get(1, type), module.i32.const(-1));
  return module.block(
    null,
    [module.if(refused, module.global.set(REFUSED_INTERNAL, module.i32.const(1))), module.local.get(1, type)],
    type,
  );
}

/**
 * A fuel hook is called at every loop iteration: as a call it made a tight loop 1.3-2.2x slower (bench/),
 * inlined about 1.0-1.1x. binaryen's inliner takes every function up to a size, so guest functions that
 * small are inlined too; that keeps their semantics and their fuel (their hook calls come along).
 */
const HOOK_INLINE_MAX_SIZE = 12;

function inlineHooks(module: binaryen.Module): void {
  const saved = [binaryen.getAlwaysInlineMaxSize(), binaryen.getFlexibleInlineMaxSize(), binaryen.getOneCallerInlineMaxSize()];
  binaryen.setAlwaysInlineMaxSize(HOOK_INLINE_MAX_SIZE);
  binaryen.setFlexibleInlineMaxSize(0);
  binaryen.setOneCallerInlineMaxSize(0);
  try {
    module.runPasses(['inlining']);
  } finally {
    binaryen.setAlwaysInlineMaxSize(saved[0]!);
    binaryen.setFlexibleInlineMaxSize(saved[1]!);
    binaryen.setOneCallerInlineMaxSize(saved[2]!);
  }
}

function functionInfos(module: binaryen.Module): binaryen.FunctionInfo[] {
  const infos: binaryen.FunctionInfo[] = [];
  for (let i = 0; i < module.getNumFunctions(); i++) infos.push(binaryen.getFunctionInfo(module.getFunctionByIndex(i)));
  return infos;
}

function definesFunctions(bytes: Uint8Array, sections: readonly Section[]): boolean {
  const functions = sections.find((s) => s.id === FUNCTION_SECTION);
  return functions !== undefined && new Reader(bytes, functions.contentStart, functions.end).u32() > 0;
}

/** Keeps the name section when the module had one (guest trap stack traces name functions through it). */
function emit(module: binaryen.Module, withNames: boolean): Uint8Array {
  const previous = binaryen.getDebugInfo();
  binaryen.setDebugInfo(withNames);
  try {
    return module.emitBinary();
  } finally {
    binaryen.setDebugInfo(previous);
  }
}

/**
 * Returns `bytes` with the maximum of every memory it defines lowered to `maxPages` (and set where there
 * was none); imported memories and every other section are left as they are. Returns `bytes` itself when
 * the module defines no memory, otherwise one new array (the only copy made).
 * @throws MemoryCapError when a defined memory's initial size is over `maxPages`
 * @throws MeterError for memory64 or a malformed module
 */
export function capMemories(bytes: Uint8Array, maxPages: number): Uint8Array {
  if (!Number.isInteger(maxPages) || maxPages < 0 || maxPages > MAX_PAGES) {
    throw new RangeError(`maxPages must be an integer from 0 to ${MAX_PAGES}, got ${maxPages}`);
  }
  const section = sectionsOf(bytes).find((s) => s.id === MEMORY_SECTION);
  if (section === undefined) return bytes;
  const content: number[] = [];
  const memories = readMemories(bytes, section);
  writeLeb(content, memories.length);
  for (const { flags, initial, max } of memories) {
    if (initial > maxPages) throw new MemoryCapError(initial, maxPages);
    content.push(flags | HAS_MAX);
    writeLeb(content, initial);
    writeLeb(content, Math.min(max ?? maxPages, maxPages));
  }
  return replaceSection(bytes, section, content);
}

/** One new array: the bytes before the section, the section with `content`, the bytes after it. */
function replaceSection(bytes: Uint8Array, section: Section, content: readonly number[]): Uint8Array {
  const header: number[] = [section.id];
  writeLeb(header, content.length);
  const out = new Uint8Array(section.start + header.length + content.length + (bytes.length - section.end));
  out.set(bytes.subarray(0, section.start));
  out.set(header, section.start);
  out.set(content, section.start + header.length);
  out.set(bytes.subarray(section.end), section.start + header.length + content.length);
  return out;
}

function writeLeb(out: number[], value: number): void {
  for (;;) {
    const low = value & 0x7f;
    value >>>= 7;
    if (value === 0) {
      out.push(low);
      return;
    }
    out.push(low | 0x80);
  }
}

// ---- Reading the binary format (https://webassembly.github.io/spec/core/binary/modules.html) ----

const IMPORT_SECTION = 2;
const FUNCTION_SECTION = 3;
const MEMORY_SECTION = 5;
const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
// Limits flags: bit 0 a maximum follows, bit 1 shared, bit 2 64-bit addresses; others are proposals (custom page sizes).
const HAS_MAX = 0x01;
const SHARED = 0x02;
const MEMORY64 = 0x04;

interface Section {
  readonly id: number;
  /** Offset of the section id byte. */
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
  /** For a custom section (id 0), its name. */
  readonly customName: string | undefined;
}

interface Memory {
  readonly flags: number;
  readonly initial: number;
  readonly max: number | undefined;
}

/** The section headers, checked to tile the module exactly. */
function sectionsOf(bytes: Uint8Array): Section[] {
  if (bytes.length < HEADER.length || HEADER.some((b, i) => bytes[i] !== b)) {
    throw new MeterError('not a core wasm module (no \\0asm version 1 header)');
  }
  const sections: Section[] = [];
  const reader = new Reader(bytes, HEADER.length, bytes.length);
  while (!reader.done) {
    const start = reader.pos;
    const id = reader.byte();
    const length = reader.u32();
    const contentStart = reader.pos;
    reader.skip(length);
    const customName = id === 0 ? new Reader(bytes, contentStart, reader.pos).name() : undefined;
    sections.push({ id, start, contentStart, end: reader.pos, customName });
  }
  return sections;
}

function readMemories(bytes: Uint8Array, section: Section): Memory[] {
  const reader = new Reader(bytes, section.contentStart, section.end);
  const memories: Memory[] = [];
  for (let count = reader.u32(); count > 0; count--) memories.push(reader.memoryLimits(`defined memory ${memories.length}`));
  reader.expectEnd('memory section');
  return memories;
}

const utf8 = new TextDecoder();

class Reader {
  constructor(
    private readonly bytes: Uint8Array,
    public pos: number,
    private readonly end: number,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  byte(): number {
    if (this.pos >= this.end) throw new MeterError(`malformed module: unexpected end at byte ${this.pos}`);
    return this.bytes[this.pos++]!;
  }

  skip(length: number): void {
    if (length > this.end - this.pos) throw new MeterError(`malformed module: ${length} bytes at byte ${this.pos} run past the end`);
    this.pos += length;
  }

  u32(): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (value > 0xffff_ffff) break;
        return value;
      }
    }
    throw new MeterError(`malformed module: bad u32 ending at byte ${this.pos}`);
  }

  /** Any LEB128 (u64 and s33 too), value unused. */
  skipLeb(): void {
    while (this.byte() & 0x80);
  }

  name(): string {
    const length = this.u32();
    const start = this.pos;
    this.skip(length);
    return utf8.decode(this.bytes.subarray(start, this.pos));
  }

  /** A one-byte type, or `(ref null? ht)`: 0x63/0x64 then a heap type (s33, maybe after the 0x65 shared prefix). */
  skipValueType(): void {
    const type = this.byte();
    if (type !== 0x63 && type !== 0x64) return;
    if (this.bytes[this.pos] === 0x65) this.pos++;
    this.skipLeb();
  }

  skipLimits(): void {
    const flags = this.byte();
    this.skipLeb();
    if (flags & HAS_MAX) this.skipLeb();
  }

  memoryLimits(what: string): Memory {
    const flags = this.byte();
    if (flags & MEMORY64) throw new MeterError(`${what} uses memory64 (64-bit addresses), which ICE does not support`);
    if (flags & ~(HAS_MAX | SHARED)) throw new MeterError(`${what} has unsupported limits flags 0x${flags.toString(16)}`);
    const initial = this.u32();
    return { flags, initial, max: flags & HAS_MAX ? this.u32() : undefined };
  }

  expectEnd(what: string): void {
    if (this.pos !== this.end) throw new MeterError(`malformed module: ${what} has ${this.end - this.pos} bytes past its entries`);
  }
}
