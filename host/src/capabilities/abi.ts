/**
 * The canonical ABI, as ICE's own bindings of the `ice:agent@0.1.0` interfaces use it (each capability's
 * `binding`): the core-level import functions the guest's core module calls, lifting its arguments from
 * linear memory and lowering the kernel's answer into the guest's return area. They replace jco's
 * generated trampolines for the ICE interfaces, which cost ~15 µs a call (a process.env lookup in a
 * debug hook on every call, async-task bookkeeping, a table indirection through a shim module), against
 * ~1 µs here. The export side (`run`) stays jco's: it is one crossing per run.
 *
 * The canonical ABI for these signatures (wasm32, utf8), as the SDKs lower them:
 *   strings are (ptr, len); every function returns a result through a return pointer, last argument;
 *   error (variant, size 12): tag u8 @0 (denied 0, limit 1, invalid 2, failed 3), string ptr @4, len @8;
 *   result<_, error>: tag @0, err @4 · result<u64, error>: tag @0, ok u64 @8, err @8 ·
 *   result<list<u8>, error>: ok ptr @4 len @8 · result<option<string>, error>: option tag @4, ptr @8,
 *   len @12 · result<list<string>, error>: ok ptr @4 len @8 (elements ptr, len; 8 bytes, align 4).
 *   http.fetch(request) is flattened to 9 values: method, url, headers (list of 16-byte {name, value}
 *   records), body option (tag, ptr, len); result<response, error>: status u16 @4, headers @8/@12,
 *   body @16/@20. model.complete(request): model, messages (16-byte {role, content} records), max-tokens;
 *   result<completion, error>: text @4/@8, usage input @12, output @16.
 * Everything the guest hands over is checked: a pointer or length outside its memory is a RangeError,
 * a string that is not UTF-8 a TypeError (both blamed on the guest); an unknown `level` a TypeError.
 */
/** What the kernel answers: the WIT result as jco would have lowered it. */
export type AbiAnswer = { tag: 'ok'; val: unknown } | { tag: 'err'; val: { tag: string; val: string } };
/** A core-level import function: wasm values in, nothing out (results go through the return area). */
export type CoreFunction = (...args: number[]) => void;

/** The instance's memory and allocator, known once it exists (imports are bound before). */
export interface GuestMemory {
  memory?: WebAssembly.Memory;
  realloc?: (oldPtr: number, oldSize: number, align: number, newSize: number) => number;
}

const ERROR_TAGS: Readonly<Record<string, number>> = { denied: 0, limit: 1, invalid: 2, failed: 3 };
const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

export class Abi {
  private view = new DataView(new ArrayBuffer(0));
  private bytes = new Uint8Array(0);

  constructor(private readonly guest: GuestMemory) {}

  /** Views of the current buffer (memory.grow, also inside realloc, replaces it). */
  private refresh(): void {
    const memory = this.guest.memory;
    if (!memory) throw new RangeError('an ICE import was called before the instance was ready');
    if (this.bytes.buffer !== memory.buffer) {
      this.bytes = new Uint8Array(memory.buffer);
      this.view = new DataView(memory.buffer);
    }
  }

  private check(ptr: number, len: number, what: string): void {
    if (ptr + len > this.bytes.length) {
      throw new RangeError(`${what} at ${ptr} (${len} bytes) is outside the guest's memory of ${this.bytes.length} bytes`);
    }
  }

  string(ptr: number, len: number): string {
    this.refresh();
    const p = ptr >>> 0;
    const n = len >>> 0;
    this.check(p, n, 'a string');
    return utf8.decode(this.bytes.subarray(p, p + n));
  }

  bytesCopy(ptr: number, len: number): Uint8Array {
    this.refresh();
    const p = ptr >>> 0;
    const n = len >>> 0;
    this.check(p, n, 'a byte list');
    return this.bytes.slice(p, p + n);
  }

  /** A list of records of two strings each (http headers, model messages), 16 bytes per element. */
  stringPairs(ptr: number, len: number, first: string, second: string): Record<string, string>[] {
    this.refresh();
    const p = ptr >>> 0;
    const n = len >>> 0;
    if (n > 0 && p % 4 !== 0) throw new RangeError(`a list at ${p} is not aligned to 4`);
    this.check(p, n * 16, 'a list');
    const out: Record<string, string>[] = [];
    for (let i = 0; i < n; i++) {
      const at = p + i * 16;
      const a = this.string(this.view.getUint32(at, true), this.view.getUint32(at + 4, true));
      const b = this.string(this.view.getUint32(at + 8, true), this.view.getUint32(at + 12, true));
      out.push({ [first]: a, [second]: b });
    }
    return out;
  }

  /** Lowers a list of two-string records; returns [ptr, len]. */
  lowerStringPairs(items: readonly Record<string, string>[], first: string, second: string): [number, number] {
    if (items.length === 0) return [4, 0];
    const lowered = items.map((item) => [...this.lowerString(item[first]!), ...this.lowerString(item[second]!)]);
    const elements = this.alloc(items.length * 16, 4);
    lowered.forEach(([ap, al, bp, bl], i) => {
      this.u32(elements + i * 16, ap!);
      this.u32(elements + i * 16 + 4, al!);
      this.u32(elements + i * 16 + 8, bp!);
      this.u32(elements + i * 16 + 12, bl!);
    });
    return [elements, items.length];
  }

  u16(at: number, value: number): void {
    this.view.setUint16(at, value, true);
  }

  /** An enum's case by its discriminant; an unknown one is the guest breaking the ABI. */
  enumCase<T extends string>(cases: readonly T[], value: number, what: string): T {
    const found = cases[value];
    if (found === undefined) throw new TypeError(`invalid ${what} discriminant ${value}`);
    return found;
  }

  alloc(size: number, align: number): number {
    const realloc = this.guest.realloc;
    if (!realloc) throw new RangeError('the guest exports no cabi_realloc');
    const ptr = realloc(0, 0, align, size) >>> 0;
    this.refresh();
    this.check(ptr, size, 'memory from cabi_realloc');
    return ptr;
  }

  /** Writes `text` as UTF-8 into a block from the guest's allocator; returns [ptr, len]. */
  lowerString(text: string): [number, number] {
    const len = Buffer.byteLength(text, 'utf8');
    if (len === 0) return [1, 0];
    const ptr = this.alloc(len, 1);
    encoder.encodeInto(text, this.bytes.subarray(ptr, ptr + len));
    return [ptr, len];
  }

  lowerBytes(data: Uint8Array): [number, number] {
    if (data.length === 0) return [1, 0];
    const ptr = this.alloc(data.length, 1);
    this.bytes.set(data, ptr);
    return [ptr, data.length];
  }

  /** Checks the return area (`size` bytes at `ret`) before anything is written to it. */
  area(ret: number, size: number): number {
    this.refresh();
    const p = ret >>> 0;
    this.check(p, size, 'the return area');
    return p;
  }

  u8(at: number, value: number): void {
    this.view.setUint8(at, value);
  }
  u32(at: number, value: number): void {
    this.view.setUint32(at, value, true);
  }
  u64(at: number, value: bigint): void {
    this.view.setBigUint64(at, value, true);
  }

  /** The error variant at `at`: tag, then the message as a guest-owned string. */
  error(ret: number, at: number, error: { tag: string; val: string }): void {
    const [ptr, len] = this.lowerString(error.val);
    const p = this.area(ret, at + 12) + at;
    this.u8(p, ERROR_TAGS[error.tag] ?? 3);
    this.u32(p + 4, ptr);
    this.u32(p + 8, len);
  }
}

/** The err case of a result whose payload starts at `at` (4, or 8 for result<u64, error>). */
export function fail(abi: Abi, ret: number, at: number, error: { tag: string; val: string }): void {
  abi.error(ret, at, error);
  abi.u8(ret >>> 0, 1);
}

/** result<_, error> */
export function unit(abi: Abi, ret: number, answer: AbiAnswer): void {
  if (answer.tag === 'ok') abi.u8(abi.area(ret, 1), 0);
  else fail(abi, ret, 4, answer.val);
}
