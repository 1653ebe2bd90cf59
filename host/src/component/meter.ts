/**
 * Metering of core wasm modules: CPU fuel and refused memory growth, enforced inside the guest's own code.
 *
 * meterCoreModule (once per component, the result is cached) instruments a core module with two binaryen
 * passes and turns the imports they add into functions defined in the module:
 * - `log-execution` places a hook at every function entry, function exit/return and loop header; the hook
 *   takes one unit from the `ice:meter.fuel` global and traps once it is below zero. Fuel is counted per
 *   control-flow point rather than per instruction: coarser, but it bounds every loop and every recursion.
 * - `instrument-memory`, restricted to `memory.grow`, wraps each grow: the pre hook charges the delta
 *   to `ice:meter.memory_budget`, the pages left of limits.memoryMiB for the whole component instance,
 *   and turns a grow past it into one the engine refuses; the post hook gives the pages back when the
 *   grow failed and raises `ice:meter.memory_refused`, so the host can tell a guest that ran out of
 *   memory from one that trapped for another reason.
 * - meter-bulk.ts charges memory.fill/copy/init by length (one unit per BULK_BYTES_PER_FUEL bytes).
 * The output is not byte-for-byte reproducible: log-execution numbers its points with a process-wide
 * counter, and that number is the (ignored) argument of every fuel hook call.
 *
 * capMemories and the names of the meter imports are in core-binary.ts: the run path needs them, and must
 * not pay for loading binaryen.
 */
import binaryen from 'binaryen';
import {
  FUEL_GLOBAL,
  FUNCTION_SECTION,
  IMPORT_SECTION,
  MEMORY_BUDGET_GLOBAL,
  MEMORY_REFUSED_GLOBAL,
  MEMORY_SECTION,
  METER_MODULE,
  MeterError,
  REFUEL_FUNCTION,
  Reader,
  type MeterVariant,
  readMemories,
  sectionsOf,
  type Section,
} from './core-binary.js';
import { BULK_HOOK, meterBulkOps } from './meter-bulk.js';

export { FUEL_GLOBAL, MEMORY_BUDGET_GLOBAL, MEMORY_REFUSED_GLOBAL, METER_MODULE, MemoryCapError, MeterError, REFUEL_FUNCTION, capMemories, capModule, type MeterVariant } from './core-binary.js';

// The hooks the passes call, by the fixed internal (and `env.*` import) names binaryen gives them.
const LOG_EXECUTION = 'log_execution';
const MEMORY_GROW_PRE = 'memory_grow_pre';
const MEMORY_GROW_POST = 'memory_grow_post';
const NAMED_HOOKS: readonly string[] = [LOG_EXECUTION, MEMORY_GROW_PRE, MEMORY_GROW_POST];
/** Internal names of the two `ice:meter` global imports; unlikely in a guest, and checked anyway. */
const FUEL_INTERNAL = '__ice_meter_fuel';
const REFUSED_INTERNAL = '__ice_meter_memory_refused';
const REFUEL_INTERNAL = '__ice_meter_refuel';
const BUDGET_INTERNAL = '__ice_meter_memory_budget';
/** Module-local: the pages the grow in flight took from the budget, given back if the engine refuses it. */
const PENDING_INTERNAL = '__ice_meter_grow_pending';
const METER_GLOBALS: readonly string[] = [FUEL_INTERNAL, REFUSED_INTERNAL, BUDGET_INTERNAL, PENDING_INTERNAL];

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
export function meterCoreModule(bytes: Uint8Array, variant: MeterVariant = 'trap'): Uint8Array {
  try {
    return meter(bytes, variant);
  } catch (error) {
    // binaryen recurses on nesting (its binary writer, at a depth of some thousands of blocks); V8
    // reports that as a RangeError, and binaryen stays usable afterwards.
    if (error instanceof RangeError && /call stack/i.test(error.message)) {
      throw new MeterError('its code is nested too deeply to be metered (binaryen ran out of stack): flatten the nesting of blocks, loops and ifs');
    }
    throw error;
  }
}

function meter(bytes: Uint8Array, variant: MeterVariant): Uint8Array {
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
    module.addGlobalImport(BUDGET_INTERNAL, METER_MODULE, MEMORY_BUDGET_GLOBAL, binaryen.i32, true);
    module.addGlobal(PENDING_INTERNAL, binaryen.i32, true, module.i32.const(0));
    if (variant === 'preemptible') module.addFunctionImport(REFUEL_INTERNAL, METER_MODULE, REFUEL_FUNCTION, binaryen.none, binaryen.none);
    const added = instrument(module);
    meterBulkOps(module, FUEL_INTERNAL, variant === 'preemptible' ? REFUEL_INTERNAL : undefined);
    defineHooks(module, added, variant);
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
    if (hooks.has(name) || name === BULK_HOOK) throw new MeterError(`it has a function named ${name}, a name the metering passes use`);
  }
  for (let i = 0; i < module.getNumGlobals(); i++) {
    const { name } = binaryen.getGlobalInfo(module.getGlobalByIndex(i));
    if (METER_GLOBALS.includes(name)) throw new MeterError(`it has a global named ${name}, a name metering uses`);
  }
  if (functionInfos(module).some((f) => f.name === REFUEL_INTERNAL)) throw new MeterError(`it has a function named ${REFUEL_INTERNAL}, a name metering uses`);
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
function defineHooks(module: binaryen.Module, added: readonly binaryen.FunctionInfo[], variant: MeterVariant): void {
  for (const hook of added) {
    module.removeFunction(hook.name);
    const body = hookBody(module, hook, variant);
    if (body !== undefined) module.addFunction(hook.name, hook.params, hook.results, [], body);
  }
}

function hookBody(module: binaryen.Module, hook: binaryen.FunctionInfo, variant: MeterVariant): binaryen.ExpressionRef | undefined {
  switch (hook.name) {
    case LOG_EXECUTION:
      return takeFuel(module, variant);
    case MEMORY_GROW_PRE: // (id, delta) -> delta
      return chargeGrow(module, hook.results);
    case MEMORY_GROW_POST: // (id, result) -> result
      return flagRefusedGrow(module, hook.results);
    default:
      return undefined;
  }
}

/**
 * `fuel -= 1; if (fuel < 0) unreachable`, or in a preemptible module
 * `fuel -= 1; if (fuel < 0) { refuel(); if (fuel < 0) unreachable }`: the host adds the next slice, or
 * leaves fuel negative and the guest traps — a trap, unlike an exception thrown by the host, cannot be
 * caught by the guest's own exception handlers. Any call in a loop stops V8 from unrolling it (a tight
 * loop ran 2.6x slower, bench/calls.ts), so only runs that need the slices get that variant.
 */
function takeFuel(module: binaryen.Module, variant: MeterVariant): binaryen.ExpressionRef {
  const fuel = (): binaryen.ExpressionRef => module.global.get(FUEL_INTERNAL, binaryen.i64);
  const spent = (): binaryen.ExpressionRef => module.i64.lt_s(fuel(), module.i64.const(0n));
  const outOfSlice = variant === 'preemptible' ? module.block(null, [module.call(REFUEL_INTERNAL, [], binaryen.none), module.if(spent(), module.unreachable())]) : module.unreachable();
  return module.block(null, [module.global.set(FUEL_INTERNAL, module.i64.sub(fuel(), module.i64.const(1n))), module.if(spent(), outOfSlice)]);
}

/**
 * `if (delta >u budget) { pending = 0; return -1 } budget -= delta; pending = delta; return delta`.
 * The hook's result is the delta the grow uses: -1 (4 Gi pages) is a grow no wasm32 memory can take,
 * so the engine refuses it and the guest sees memory.grow return -1, as at a memory's own maximum.
 */
function chargeGrow(module: binaryen.Module, type: binaryen.Type): binaryen.ExpressionRef {
  const delta = (): binaryen.ExpressionRef => module.local.get(1, type);
  const budget = (): binaryen.ExpressionRef => module.global.get(BUDGET_INTERNAL, binaryen.i32);
  return module.block(
    null,
    [
      module.if(
        module.i32.gt_u(delta(), budget()),
        module.block(null, [module.global.set(PENDING_INTERNAL, module.i32.const(0)), module.return(module.i32.const(-1))]),
      ),
      module.global.set(BUDGET_INTERNAL, module.i32.sub(budget(), delta())),
      module.global.set(PENDING_INTERNAL, delta()),
      delta(),
    ],
    type,
  );
}

/** `if (result == -1) { memory_refused = 1; budget += pending } return result` */
function flagRefusedGrow(module: binaryen.Module, type: binaryen.Type): binaryen.ExpressionRef {
  const refused = module.i32.eq(module.local.get(1, type), module.i32.const(-1));
  const refund = module.global.set(
    BUDGET_INTERNAL,
    module.i32.add(module.global.get(BUDGET_INTERNAL, binaryen.i32), module.global.get(PENDING_INTERNAL, binaryen.i32)),
  );
  return module.block(
    null,
    [module.if(refused, module.block(null, [module.global.set(REFUSED_INTERNAL, module.i32.const(1)), refund])), module.local.get(1, type)],
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

