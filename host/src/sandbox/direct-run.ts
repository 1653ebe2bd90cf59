/**
 * The ICE world's `run: func(input: string) -> result<string, string>` called on the guest's core
 * module itself, its one string lowered and its result lifted by the canonical ABI here, in place of
 * jco's export wrapper. jco 1.35 wraps every export call in task bookkeeping made for async components
 * (a task object, a global task meta, async state per component): for a synchronous call made once per
 * fresh instance that was ~10% of a hello run's time on the worker pool (CPU profile).
 *
 * Used only when jco's own glue shows the plain shape — the core instance that exports `run` also
 * supplies the memory, `cabi_realloc` and `cabi_post_run` the lift uses, and the strings are UTF-8 —
 * and that instance imports nothing but ICE interfaces and the meter (so no jco trampoline can run
 * inside the call and look for the task it would have made). Anything else keeps jco's wrapper.
 *
 * The same checks as the glue's, strict: a return area or string outside the guest's memory is a
 * RangeError, a string that is not UTF-8 a TypeError, an unknown discriminant a TypeError (all blamed
 * on the guest, as from the glue).
 */
import { METER_MODULE } from '../component/core-binary.js';
import { ICE_PACKAGE } from '../core/world.js';

/** `run(input)` on one instance: the guest's `ok` or `err` string. */
export type DirectRun = (input: string) => { readonly tag: 'ok' | 'err'; readonly val: string };

/** The direct entry of an instance's exports object, when it has one (set at instantiation). */
export const directRuns = new WeakMap<object, DirectRun>();

const plainGlue = new WeakMap<object, boolean>();

/**
 * Whether jco's generated `instantiate` wires `run` the plain way (read from its source once per glue):
 * the run function's core export, memory, realloc and post-return all from one core instance, UTF-8.
 */
export function gluePlainRun(generated: (...args: never[]) => unknown): boolean {
  let known = plainGlue.get(generated);
  if (known === undefined) {
    known = isPlain(Function.prototype.toString.call(generated));
    plainGlue.set(generated, known);
  }
  return known;
}

function isPlain(source: string): boolean {
  const runs = [...source.matchAll(/\b(exports\d+)Run = (exports\d+)\.run;/g)];
  if (runs.length !== 1) return false;
  const [, name, core] = runs[0]!;
  if (core !== name) return false;
  return (
    (source.match(/\bfunction run\(arg0\)/g)?.length ?? 0) === 1 &&
    source.includes(`memory0 = ${core}.memory;`) &&
    source.includes(`realloc0 = ${core}.cabi_realloc;`) &&
    source.includes(`postReturn0 = ${core}.cabi_post_run;`) &&
    source.includes('_utf8AllocateAndEncode(arg0, realloc0, memory0)') &&
    source.includes(`fn: () => ${name}Run(ptr0, len0)`) &&
    source.includes('TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr1, len1))') &&
    source.includes('TEXT_DECODER_UTF8.decode(new Uint8Array(memory0.buffer, ptr2, len2))') &&
    source.includes('postReturn0(ret);')
  );
}

interface RunCore {
  run(ptr: number, len: number): number;
  memory: WebAssembly.Memory;
  cabi_realloc(oldPtr: number, oldSize: number, align: number, newSize: number): number;
  cabi_post_run(ret: number): void;
}

const ICE_IMPORT = `${ICE_PACKAGE}/`;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The direct entry for the core instance that exports `run`, or undefined when it is not the plain kind. */
export function directRunOf(instance: WebAssembly.Instance, module: WebAssembly.Module): DirectRun | undefined {
  const core = instance.exports as Partial<RunCore>;
  const { run, memory, cabi_realloc: realloc, cabi_post_run: postReturn } = core;
  if (typeof run !== 'function' || !(memory instanceof WebAssembly.Memory) || typeof realloc !== 'function' || typeof postReturn !== 'function') return undefined;
  if (!WebAssembly.Module.imports(module).every((i) => i.module === METER_MODULE || i.module.startsWith(ICE_IMPORT))) return undefined;
  return (input) => {
    let ptr = 1;
    let len = 0;
    if (input.length > 0) {
      const bytes = encoder.encode(input);
      len = bytes.length;
      ptr = realloc(0, 0, 1, len) >>> 0;
      inside(memory, ptr, len, 'the input string from cabi_realloc');
      new Uint8Array(memory.buffer, ptr, len).set(bytes);
    }
    const ret = run(ptr, len) >>> 0;
    inside(memory, ret, 12, 'the return area of run');
    const view = new DataView(memory.buffer);
    const tag = view.getUint8(ret);
    if (tag > 1) throw new TypeError('invalid variant discriminant for expected');
    const at = view.getUint32(ret + 4, true);
    const size = view.getUint32(ret + 8, true);
    inside(memory, at, size, 'the string run returned');
    const val = decoder.decode(new Uint8Array(memory.buffer, at, size));
    postReturn(ret);
    return { tag: tag === 0 ? 'ok' : 'err', val };
  };
}

function inside(memory: WebAssembly.Memory, ptr: number, len: number, what: string): void {
  if (ptr + len > memory.buffer.byteLength) throw new RangeError(`${what} at ${ptr} (${len} bytes) is outside the guest's memory of ${memory.buffer.byteLength} bytes`);
}
