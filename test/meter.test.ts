/**
 * component/meter.ts: fuel and refused-growth metering of core modules, and the memory cap patch.
 * Modules are written in WAT (compiled by binaryen) or, where the exact bytes matter, by hand; the
 * metered ones run in this process's engine against a real `ice:meter` pair of globals.
 */
import binaryen from 'binaryen';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildAssemblyScript } from '../host/src/build/assemblyscript.js';
import { buildRust } from '../host/src/build/rust.js';
import {
  capMemories,
  FUEL_GLOBAL,
  MEMORY_BUDGET_GLOBAL,
  MEMORY_REFUSED_GLOBAL,
  REFUEL_FUNCTION,
  METER_MODULE,
  MemoryCapError,
  MeterError,
  meterCoreModule,
} from '../host/src/component/meter.js';
import { DEADLINE_SLICE, runMeter, type RunMeter } from '../host/src/sandbox/fuel.js';
import { ROOT } from './paths.js';

process.env.CARGO_TARGET_DIR = join(ROOT, 'build', 'cargo-test-target');

function wat(text: string, { names = false } = {}): Uint8Array {
  const module = binaryen.parseText(text);
  const debugInfo = binaryen.getDebugInfo();
  binaryen.setDebugInfo(names);
  try {
    return module.emitBinary();
  } finally {
    binaryen.setDebugInfo(debugInfo);
    module.dispose();
  }
}

interface Meter {
  fuel: WebAssembly.Global;
  refused: WebAssembly.Global;
  budget: WebAssembly.Global;
}

function newMeter(fuel = 1_000_000n): Meter {
  return {
    fuel: new WebAssembly.Global({ value: 'i64', mutable: true }, fuel),
    refused: new WebAssembly.Global({ value: 'i32', mutable: true }, 0),
    budget: new WebAssembly.Global({ value: 'i32', mutable: true }, 65_536),
  };
}

/** `T` describes the exports the test calls. */
function instantiate<T>(bytes: Uint8Array, meter: Meter, imports: WebAssembly.Imports = {}): T {
  const module = new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>);
  const metering = { [FUEL_GLOBAL]: meter.fuel, [MEMORY_REFUSED_GLOBAL]: meter.refused, [MEMORY_BUDGET_GLOBAL]: meter.budget };
  return new WebAssembly.Instance(module, { ...imports, [METER_MODULE]: metering }).exports as unknown as T;
}

/** Fuel `run` takes from a fresh budget of a million. */
function fuelUsed(meter: Meter, run: () => void): bigint {
  meter.fuel.value = 1_000_000n;
  run();
  return 1_000_000n - (meter.fuel.value as bigint);
}

interface Loops {
  spin(n: number): void;
  forever(): void;
  recurse(depth: number): void;
  early(returnEarly: number): number;
}

const LOOPS = wat(`(module
  (func (export "spin") (param $n i32)
    (local $i i32)
    (loop $again
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (local.get $n)))))
  (func (export "forever") (loop $again (br $again)))
  (func $down (export "recurse") (param $depth i32)
    (if (local.get $depth) (then (call $down (i32.sub (local.get $depth) (i32.const 1))))))
  (func (export "early") (param i32) (result i32)
    (if (local.get 0) (then (return (i32.const 1))))
    (i32.const 0)))`);

interface Grow {
  memory: WebAssembly.Memory;
  grow(pages: number): number;
}

const GROW = wat(`(module
  (memory (export "memory") 1)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`);

describe('run meter: fuel in slices', () => {
  const withMeter = (run: RunMeter) =>
    new WebAssembly.Instance(new WebAssembly.Module(meterCoreModule(LOOPS, 'preemptible') as Uint8Array<ArrayBuffer>), {
      [METER_MODULE]: { [FUEL_GLOBAL]: run.meter.fuel, [MEMORY_REFUSED_GLOBAL]: run.meter.memoryRefused, [MEMORY_BUDGET_GLOBAL]: run.meter.memoryBudget, [REFUEL_FUNCTION]: run.meter.refuel },
    }).exports as unknown as Loops;

  it('counts fuel across slices exactly as one budget would', () => {
    const sliced = runMeter(30_000_000, performance.now() + 60_000);
    const whole = runMeter(30_000_000);
    withMeter(sliced).spin(3 * DEADLINE_SLICE + 5);
    withMeter(whole).spin(3 * DEADLINE_SLICE + 5);
    expect(sliced.used()).toBe(3 * DEADLINE_SLICE + 6);
    expect(whole.used()).toBe(sliced.used());
    expect(sliced.outOfFuel()).toBe(false);
  });

  it('runs out at the budget, not at a slice', () => {
    const run = runMeter(DEADLINE_SLICE + 1000, performance.now() + 60_000);
    expect(() => withMeter(run).forever()).toThrow(WebAssembly.RuntimeError);
    expect(run.outOfFuel()).toBe(true);
    expect(run.used()).toBe(DEADLINE_SLICE + 1000);
  });

  it('stops an endless loop at the deadline, which nothing else could on this thread', () => {
    const started = performance.now();
    const run = runMeter(1e15, started + 100);
    expect(() => withMeter(run).forever()).toThrow(WebAssembly.RuntimeError);
    expect(run.pastDeadline()).toBe(true);
    expect(run.outOfFuel()).toBe(false);
    expect(performance.now() - started).toBeGreaterThanOrEqual(100);
    expect(performance.now() - started).toBeLessThan(600);
    expect(run.used()).toBeGreaterThan(DEADLINE_SLICE);
  });

  it('stops a guest that catches every exception: the deadline ends it with a trap, which wasm cannot catch', () => {
    const STUBBORN = wat(`(module
      (import "env" "poke" (func $poke))
      (func (export "forever") (loop $outer (try (do (loop $l (call $poke) (br $l))) (catch_all)) (br $outer))))`);
    const started = performance.now();
    const run = runMeter(1e15, started + 100);
    const module = new WebAssembly.Module(meterCoreModule(STUBBORN, 'preemptible') as Uint8Array<ArrayBuffer>);
    const stubborn = new WebAssembly.Instance(module, {
      // An import that throws past the deadline, as the kernel does (expiring the meter): caught by catch_all.
      env: {
        poke: () => {
          if (performance.now() < started + 100) return;
          run.expire();
          throw new Error('past the deadline');
        },
      },
      [METER_MODULE]: { [FUEL_GLOBAL]: run.meter.fuel, [MEMORY_REFUSED_GLOBAL]: run.meter.memoryRefused, [MEMORY_BUDGET_GLOBAL]: run.meter.memoryBudget, [REFUEL_FUNCTION]: run.meter.refuel },
    }).exports as unknown as { forever(): void };
    expect(() => stubborn.forever()).toThrow(WebAssembly.RuntimeError);
    expect(run.pastDeadline()).toBe(true);
    expect(performance.now() - started).toBeLessThan(600);
  });

  it('imports refuel only in the preemptible variant', () => {
    const imports = (variant: 'trap' | 'preemptible') => WebAssembly.Module.imports(new WebAssembly.Module(meterCoreModule(LOOPS, variant) as Uint8Array<ArrayBuffer>)).map((i) => i.name);
    expect(imports('trap')).not.toContain(REFUEL_FUNCTION);
    expect(imports('preemptible')).toContain(REFUEL_FUNCTION);
  });
});

describe('meterCoreModule: fuel', () => {
  const meter = newMeter();
  const loops = instantiate<Loops>(meterCoreModule(LOOPS), meter);

  it('charges a loop one unit per iteration plus one for the call, the same on every run', () => {
    // spin's body is a lone loop, not a block, so log-execution places no exit point: entry + N headers.
    const spin = (n: number): bigint => fuelUsed(meter, () => loops.spin(n));
    expect([spin(10), spin(10), spin(1000)]).toEqual([11n, 11n, 1001n]);
    expect(spin(2000) - spin(1000)).toBe(spin(3000) - spin(2000));
  });

  it('inlines the fuel hook, so a loop iteration pays no call', () => {
    const text = binaryen.readBinaryWithFeatures(meterCoreModule(LOOPS), binaryen.Features.All);
    try {
      const printed = text.emitText();
      expect(printed).toContain('(global.set $gimport$0');
      expect(printed.match(/\(call /g)).toHaveLength(1); // recurse calling itself; no hook calls are left
    } finally {
      text.dispose();
    }
  });

  it('charges function exits: a return and the end of a block body', () => {
    // entry + the point before `return`, or entry + the point before the body's last expression.
    expect(fuelUsed(meter, () => loops.early(1))).toBe(2n);
    expect(fuelUsed(meter, () => loops.early(0))).toBe(2n);
  });

  it('traps an endless loop once the fuel is spent, leaving it below zero', () => {
    meter.fuel.value = 10_000n;
    expect(() => loops.forever()).toThrow(WebAssembly.RuntimeError);
    expect(meter.fuel.value).toBe(-1n);
  });

  it('charges every call of a recursion, and traps a deep one before the stack runs out', () => {
    expect(fuelUsed(meter, () => loops.recurse(100))).toBe(101n);
    meter.fuel.value = 10_000n;
    // A RuntimeError (unreachable), not the RangeError of a stack overflow.
    expect(() => loops.recurse(1_000_000)).toThrow(WebAssembly.RuntimeError);
    expect(meter.fuel.value).toBe(-1n);
  });

  it('draws the fuel of modules instantiated with one global from one budget', () => {
    const shared = newMeter(40n);
    const a = instantiate<Loops>(meterCoreModule(LOOPS), shared);
    const b = instantiate<Loops>(meterCoreModule(LOOPS), shared);
    a.spin(10);
    b.spin(20);
    expect(shared.fuel.value).toBe(40n - 11n - 21n);
    expect(() => a.spin(10)).toThrow(WebAssembly.RuntimeError);
  });
});

describe('meterCoreModule: memory growth', () => {
  it('flags a memory.grow refused at the cap, and only that one', () => {
    const meter = newMeter();
    const exports = instantiate<Grow>(capMemories(meterCoreModule(GROW), 3), meter);
    expect(exports.grow(2)).toBe(1);
    expect(meter.refused.value).toBe(0);
    expect(exports.grow(1)).toBe(-1);
    expect(meter.refused.value).toBe(1);
    expect(exports.memory.buffer.byteLength).toBe(3 * 65_536);
  });
});

describe('meterCoreModule: what it refuses and leaves alone', () => {
  const HELLO = '(func (export "f"))';

  it('refuses bytes that are not a core module, or that binaryen cannot parse', () => {
    expect(() => meterCoreModule(new Uint8Array([1, 2, 3]))).toThrow(/not a core wasm module/);
    // A type section whose only entry has an unknown form.
    expect(() => meterCoreModule(moduleOf(section(1, [1, 0x55])))).toThrow(new MeterError('binaryen cannot parse the module'));
  });

  it('refuses a module that does not validate (binaryen prints the validator errors)', () => {
    // () -> i64 whose body is an i32.const: binaryen reads it, the validator rejects it.
    const wrongType = moduleOf(section(1, [1, 0x60, 0, 1, 0x7e]), section(3, [1, 0]), section(10, [1, 4, 0, 0x41, 1, 0x0b]));
    expect(() => meterCoreModule(wrongType)).toThrow(/does not validate once instrumented/);
  });

  it('refuses an import named like a hook or from ice:meter', () => {
    expect(() => meterCoreModule(wat(`(module (import "env" "log_execution" (func (param i32))) ${HELLO})`))).toThrow(
      new MeterError('it already imports env.log_execution, the name of a metering hook'),
    );
    expect(() => meterCoreModule(wat(`(module (import "ice:meter" "fuel" (global (mut i64))) ${HELLO})`))).toThrow(
      new MeterError('it already imports ice:meter.fuel: only metering may import from ice:meter'),
    );
  });

  it('refuses a function named like a hook the passes add (which would abort binaryen)', () => {
    const named = wat(`(module (func $load_ptr (export "f")))`, { names: true });
    expect(() => meterCoreModule(named)).toThrow(new MeterError('it has a function named load_ptr, a name the metering passes use'));
  });

  it('refuses memory64, defined or imported', () => {
    expect(() => meterCoreModule(moduleOf(memories([0x04, 1])))).toThrow(
      new MeterError('defined memory 0 uses memory64 (64-bit addresses), which ICE does not support'),
    );
    const imported = section(2, [1, ...name('env'), ...name('m'), 0x02, 0x04, 1]);
    expect(() => meterCoreModule(moduleOf(imported))).toThrow(/imported memory env\.m uses memory64/);
  });

  it('returns a module that defines no functions as it is', () => {
    const bytes = wat('(module (memory (export "memory") 1) (global (export "g") i32 (i32.const 7)))');
    expect(meterCoreModule(bytes)).toBe(bytes);
  });

  it('keeps the name section when there is one', () => {
    const nameSections = (bytes: Uint8Array): number =>
      WebAssembly.Module.customSections(new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>), 'name').length;
    expect(nameSections(meterCoreModule(wat(`(module (func $f (export "f")))`, { names: true })))).toBe(1);
    expect(nameSections(meterCoreModule(wat(`(module (func $f (export "f")))`)))).toBe(0);
  });
});

describe('meterCoreModule: real guests', () => {
  const LOG_IMPORT = 'ice:agent/log@0.1.0';

  interface Guest {
    memory: WebAssembly.Memory;
    cabi_realloc(oldPtr: number, oldSize: number, align: number, newSize: number): number;
    run(ptr: number, len: number): number;
  }

  /** Calls the core `run(ptr, len) -> retptr` the way the canonical ABI does; returns the ok string and the fuel used. */
  function runHello(metered: Uint8Array, input: string): { output: string; fuel: bigint } {
    const meter = newMeter();
    const exports = instantiate<Guest>(metered, meter, { [LOG_IMPORT]: { write: () => undefined } });
    const memory = exports.memory;
    const bytes = new TextEncoder().encode(input);
    const ptr = exports.cabi_realloc(0, 0, 1, bytes.length);
    new Uint8Array(memory.buffer).set(bytes, ptr);
    const ret = exports.run(ptr, bytes.length);
    // result<string, string>: a discriminant byte, then the string's pointer and length at offsets 4 and 8.
    const view = new DataView(memory.buffer);
    expect(view.getUint8(ret)).toBe(0);
    const output = new TextDecoder().decode(new Uint8Array(memory.buffer, view.getUint32(ret + 4, true), view.getUint32(ret + 8, true)));
    return { output, fuel: 1_000_000n - (meter.fuel.value as bigint) };
  }

  it('meters the AssemblyScript and Rust hello core modules: same exports, three more imports, same behaviour', async () => {
    const cores = await Promise.all([
      buildAssemblyScript(join(ROOT, 'guests', 'hello', 'index.ts')).then((built) => built.core),
      buildRust(join(ROOT, 'guests', 'rust', 'hello')).then((built) => built.core),
    ]);
    for (const core of cores) {
      const metered = meterCoreModule(core);
      expect(WebAssembly.validate(metered as Uint8Array<ArrayBuffer>)).toBe(true);
      const before = new WebAssembly.Module(core as Uint8Array<ArrayBuffer>);
      const after = new WebAssembly.Module(metered as Uint8Array<ArrayBuffer>);
      const byName = (a: { module: string; name: string }, b: { module: string; name: string }) => `${a.module}.${a.name}`.localeCompare(`${b.module}.${b.name}`);
      expect(WebAssembly.Module.imports(after).sort(byName)).toEqual(
        [
          ...WebAssembly.Module.imports(before),
          { module: METER_MODULE, name: FUEL_GLOBAL, kind: 'global' },
          { module: METER_MODULE, name: MEMORY_REFUSED_GLOBAL, kind: 'global' },
          { module: METER_MODULE, name: MEMORY_BUDGET_GLOBAL, kind: 'global' },
        ].sort(byName),
      );
      expect(WebAssembly.Module.exports(after)).toEqual(WebAssembly.Module.exports(before));

      const first = runHello(metered, 'ice');
      expect(first.output).toBe('hello, ice!');
      expect(first.fuel).toBeGreaterThan(0n);
      expect(runHello(metered, 'ice').fuel).toBe(first.fuel);
      expect(WebAssembly.validate(capMemories(metered, 1024) as Uint8Array<ArrayBuffer>)).toBe(true);
    }
  });
});

// ---- capMemories, on hand-written modules ----

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/** A section with content shorter than 128 bytes (one-byte length). */
function section(id: number, content: readonly number[]): number[] {
  return [id, content.length, ...content];
}

function name(text: string): number[] {
  return [text.length, ...new TextEncoder().encode(text)];
}

/** A memory section: each entry is limits (flags, initial[, max]) as raw bytes. */
function memories(...limits: number[][]): number[] {
  return section(5, [limits.length, ...limits.flat()]);
}

function moduleOf(...sections: number[][]): Uint8Array {
  return new Uint8Array([...HEADER, ...sections.flat()]);
}

function valid(bytes: Uint8Array): boolean {
  return WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>);
}

describe('capMemories', () => {
  it('sets a maximum where there was none, lowers a larger one and keeps a smaller one', () => {
    const cases: [number[], number[]][] = [
      [[0x00, 1], [0x01, 1, 4]],
      [[0x01, 1, 100], [0x01, 1, 4]],
      [[0x01, 1, 2], [0x01, 1, 2]],
      [[0x03, 1, 100], [0x03, 1, 4]], // shared stays shared
    ];
    for (const [limits, capped] of cases) {
      const out = capMemories(moduleOf(memories(limits)), 4);
      expect(out).toEqual(moduleOf(memories(capped)));
      expect(valid(out)).toBe(true);
    }
  });

  it('caps every defined memory (multi-memory)', () => {
    expect(capMemories(moduleOf(memories([0x00, 1], [0x01, 2, 100])), 4)).toEqual(moduleOf(memories([0x01, 1, 4], [0x01, 2, 4])));
  });

  it('copies every other section byte for byte, re-emitting the memory section length', () => {
    const type = section(1, [1, 0x60, 0, 0]);
    const note = section(0, [...name('note'), 1, 2, 3]);
    const exports = section(7, [1, ...name('memory'), 0x02, 0]);
    const code = section(10, [1, 2, 0, 0x0b]);
    const data = section(11, [1, 0, 0x41, 0, 0x0b, 2, 0x68, 0x69]);
    const functions = section(3, [1, 0]);
    // 1024 pages is a two-byte LEB128: the memory section grows from 3 to 5 bytes.
    const out = capMemories(moduleOf(type, note, functions, memories([0x00, 1]), exports, code, data), 1024);
    expect(out).toEqual(moduleOf(type, note, functions, memories([0x01, 1, 0x80, 0x08]), exports, code, data));
    expect(valid(out)).toBe(true);
  });

  it('leaves an imported memory alone', () => {
    const bytes = moduleOf(section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x00, 100]));
    expect(capMemories(bytes, 4)).toBe(bytes);
  });

  it('refuses a memory whose initial size is over the cap', () => {
    const error = (() => {
      try {
        capMemories(moduleOf(memories([0x00, 17])), 16);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(MemoryCapError);
    expect(error).toMatchObject({ initialPages: 17, maxPages: 16, message: 'needs 2 MiB of initial memory, over the limit of 1 MiB' });
  });

  it('refuses memory64 and a malformed memory section', () => {
    expect(() => capMemories(moduleOf(memories([0x04, 1])), 4)).toThrow(MeterError);
    expect(() => capMemories(moduleOf(section(5, [2, 0x00, 1])), 4)).toThrow(/unexpected end/);
    expect(() => capMemories(moduleOf(section(5, [1, 0x00, 1, 7])), 4)).toThrow(/memory section has 1 bytes past its entries/);
  });
});
