/**
 * Fuel for bulk memory operations by length. log-execution charges one unit per control-flow point, so
 * a loop of `memory.fill`s of 64 MiB each cost one unit per 64 MiB and never ran out in practice. Every
 * memory.fill, memory.copy and memory.init here gets its length passed through a function that takes
 * 1 + length/BULK_BYTES_PER_FUEL units first (and traps, like any fuel hook, below zero), so fuel bounds
 * the bytes a guest moves as it bounds the loops it runs. The hook is small enough to be inlined.
 *
 * binaryen.js has no visitor, so the walk is by expression id over the getters it does expose; an
 * expression this walk does not know (table.fill/copy/init, which it cannot reach the operands of, GC
 * and string instructions) makes the module refused rather than metered partly. The walk keeps its own
 * stack: nesting depth is the guest's choice.
 */
import binaryen from 'binaryen';
import { MeterError } from './core-binary.js';

/** One fuel unit per this many bytes (plus one per operation): about the time of a loop iteration. */
export const BULK_BYTES_PER_FUEL = 64;
const BULK_SHIFT = Math.log2(BULK_BYTES_PER_FUEL);
/** Internal name of the length hook (checked against the guest's names like the others). */
export const BULK_HOOK = '__ice_meter_bulk';

type Ref = binaryen.ExpressionRef;
type Getters = (e: Ref) => readonly Ref[];

// `binaryen.X.getY` statics, looked up by name: the typings do not declare all of them.
const api = binaryen as unknown as Record<string, Record<string, (e: Ref) => Ref | Ref[]>>;

function getters(kind: string, ...names: string[]): Getters {
  const fns = names.map((name) => {
    const fn = api[kind]?.[name];
    if (typeof fn !== 'function') throw new Error(`binaryen.${kind}.${name} is missing: metering needs this binaryen version's API`);
    return fn;
  });
  return (e) => fns.flatMap((fn) => fn(e));
}

const NONE: Getters = () => [];
let table: Map<number, Getters> | undefined;

/** Children by expression id. Leaves are listed too: an id missing here is refused, not skipped. */
function childGetters(): Map<number, Getters> {
  if (table) return table;
  const b = binaryen as unknown as Record<string, number>;
  const entries: [string, Getters][] = [
    ['Block', getters('Block', 'getChildren')],
    ['If', getters('If', 'getCondition', 'getIfTrue', 'getIfFalse')],
    ['Loop', getters('Loop', 'getBody')],
    ['Break', getters('Break', 'getCondition', 'getValue')],
    ['Switch', getters('Switch', 'getCondition', 'getValue')],
    ['Call', getters('Call', 'getOperands')],
    ['CallIndirect', getters('CallIndirect', 'getTarget', 'getOperands')],
    ['LocalGet', NONE],
    ['LocalSet', getters('LocalSet', 'getValue')],
    ['GlobalGet', NONE],
    ['GlobalSet', getters('GlobalSet', 'getValue')],
    ['Load', getters('Load', 'getPtr')],
    ['Store', getters('Store', 'getPtr', 'getValue')],
    ['Const', NONE],
    ['Unary', getters('Unary', 'getValue')],
    ['Binary', getters('Binary', 'getLeft', 'getRight')],
    ['Select', getters('Select', 'getIfTrue', 'getIfFalse', 'getCondition')],
    ['Drop', getters('Drop', 'getValue')],
    ['Return', getters('Return', 'getValue')],
    ['MemorySize', NONE],
    ['MemoryGrow', getters('MemoryGrow', 'getDelta')],
    ['Nop', NONE],
    ['Unreachable', NONE],
    ['AtomicCmpxchg', getters('AtomicCmpxchg', 'getPtr', 'getExpected', 'getReplacement')],
    ['AtomicRMW', getters('AtomicRMW', 'getPtr', 'getValue')],
    ['AtomicWait', getters('AtomicWait', 'getPtr', 'getExpected', 'getTimeout')],
    ['AtomicNotify', getters('AtomicNotify', 'getPtr', 'getNotifyCount')],
    ['AtomicFence', NONE],
    ['SIMDExtract', getters('SIMDExtract', 'getVec')],
    ['SIMDReplace', getters('SIMDReplace', 'getVec', 'getValue')],
    ['SIMDShuffle', getters('SIMDShuffle', 'getLeft', 'getRight')],
    ['SIMDTernary', getters('SIMDTernary', 'getA', 'getB', 'getC')],
    ['SIMDShift', getters('SIMDShift', 'getVec', 'getShift')],
    ['SIMDLoad', getters('SIMDLoad', 'getPtr')],
    ['SIMDLoadStoreLane', getters('SIMDLoadStoreLane', 'getPtr', 'getVec')],
    ['MemoryInit', getters('MemoryInit', 'getDest', 'getOffset', 'getSize')],
    ['DataDrop', NONE],
    ['MemoryCopy', getters('MemoryCopy', 'getDest', 'getSource', 'getSize')],
    ['MemoryFill', getters('MemoryFill', 'getDest', 'getValue', 'getSize')],
    ['RefNull', NONE],
    ['RefIsNull', getters('RefIsNull', 'getValue')],
    ['RefFunc', NONE],
    ['RefEq', getters('RefEq', 'getLeft', 'getRight')],
    ['RefAs', getters('RefAs', 'getValue')],
    ['TableGet', getters('TableGet', 'getIndex')],
    ['TableSet', getters('TableSet', 'getIndex', 'getValue')],
    ['TableSize', NONE],
    ['TableGrow', getters('TableGrow', 'getValue', 'getDelta')],
    ['Try', getters('Try', 'getBody', 'getCatchBodies')],
    ['Throw', getters('Throw', 'getOperands')],
    ['Rethrow', NONE],
    ['TupleMake', getters('TupleMake', 'getOperands')],
    ['TupleExtract', getters('TupleExtract', 'getTuple')],
    ['Pop', NONE],
  ];
  table = new Map(entries.map(([name, get]) => [b[`${name}Id`]!, get]));
  return table;
}

/** Names of expression ids for messages (binaryen exports `XId` numbers). */
function idName(id: number): string {
  const found = Object.entries(binaryen as unknown as Record<string, unknown>).find(([k, v]) => k.endsWith('Id') && v === id);
  return found ? found[0].slice(0, -2) : `expression id ${id}`;
}

/**
 * Adds the length hook (using `fuel`, the module's fuel global) and routes the length of every bulk
 * memory operation of every defined function through it.
 * @throws MeterError on an expression the walk does not know
 */
/** `refuel`: the internal name of the refuel import in a preemptible module (see core-binary.ts). */
export function meterBulkOps(module: binaryen.Module, fuel: string, refuel?: string): void {
  const children = childGetters();
  const bulk = new Map<number, string>([
    [binaryen.MemoryFillId, 'MemoryFill'],
    [binaryen.MemoryCopyId, 'MemoryCopy'],
    [binaryen.MemoryInitId, 'MemoryInit'],
  ]);
  let used = false;
  for (let i = 0; i < module.getNumFunctions(); i++) {
    const info = binaryen.getFunctionInfo(module.getFunctionByIndex(i));
    if (!info.body) continue;
    const stack: Ref[] = [info.body];
    while (stack.length > 0) {
      const e = stack.pop()!;
      const id = binaryen.getExpressionId(e);
      const get = children.get(id);
      if (get === undefined) throw new MeterError(`function ${info.name} uses ${idName(id)}, an instruction ICE cannot meter`);
      for (const child of get(e)) if (child) stack.push(child);
      const kind = bulk.get(id);
      if (kind !== undefined) {
        const size = api[kind]!.getSize!(e) as Ref;
        (api[kind]!.setSize as unknown as (e: Ref, size: Ref) => void)(e, module.call(BULK_HOOK, [size], binaryen.i32));
        used = true;
      }
    }
  }
  if (used) module.addFunction(BULK_HOOK, binaryen.i32, binaryen.i32, [], takeFuelByLength(module, fuel, refuel));
}

/**
 * `fuel -= 1 + (size >>> shift); if (fuel < 0) unreachable; return size`, or in a preemptible module
 * `if (fuel < 0) { refuel(); if (fuel < 0) unreachable }` (refuel covers an overdraft of any size).
 */
function takeFuelByLength(module: binaryen.Module, fuel: string, refuel: string | undefined): Ref {
  const spent = (): Ref => module.i64.lt_s(module.global.get(fuel, binaryen.i64), module.i64.const(0n));
  const outOfFuel = refuel === undefined ? module.unreachable() : module.block(null, [module.call(refuel, [], binaryen.none), module.if(spent(), module.unreachable())]);
  const units = module.i64.add(module.i64.const(1n), module.i64.extend_u(module.i32.shr_u(module.local.get(0, binaryen.i32), module.i32.const(BULK_SHIFT))));
  return module.block(
    null,
    [
      module.global.set(fuel, module.i64.sub(module.global.get(fuel, binaryen.i64), units)),
      module.if(spent(), outOfFuel),
      module.local.get(0, binaryen.i32),
    ],
    binaryen.i32,
  );
}
