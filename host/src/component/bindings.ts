/**
 * ICE's own bindings for the fixed `ice:agent@0.1.0` world: the core-level import functions the guest's
 * core module calls, lifting its arguments from linear memory and lowering the mediator's answer into
 * the guest's return area. They replace jco's generated trampolines for the ICE interfaces, which cost
 * ~15 µs a call (a process.env lookup in a debug hook on every call, async-task bookkeeping, a table
 * indirection through a shim module), against ~1 µs here. The export side (`run`) stays jco's: it is one
 * crossing per run.
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
import type { CapabilityName } from './wit.js';

/** What the mediator answers: the WIT result as jco would have lowered it. */
type Answer = { tag: 'ok'; val: unknown } | { tag: 'err'; val: { tag: string; val: string } };
type HostFunction = (...args: unknown[]) => unknown;
type World = Record<string, Record<string, HostFunction>>;

/** The instance's memory and allocator, known once it exists (imports are bound before). */
export interface GuestMemory {
  memory?: WebAssembly.Memory;
  realloc?: (oldPtr: number, oldSize: number, align: number, newSize: number) => number;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
const ERROR_TAGS: Readonly<Record<string, number>> = { denied: 0, limit: 1, invalid: 2, failed: 3 };
const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

class Abi {
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

  level(value: number): (typeof LEVELS)[number] {
    const level = LEVELS[value];
    if (level === undefined) throw new TypeError(`invalid log level discriminant ${value}`);
    return level;
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
function fail(abi: Abi, ret: number, at: number, error: { tag: string; val: string }): void {
  abi.error(ret, at, error);
  abi.u8(ret >>> 0, 1);
}

/** result<_, error> */
function unit(abi: Abi, ret: number, answer: Answer): void {
  if (answer.tag === 'ok') abi.u8(abi.area(ret, 1), 0);
  else fail(abi, ret, 4, answer.val);
}

/** The core import functions for the capabilities the component imports, keyed by core module name. */
export function worldBindings(world: World, imported: readonly CapabilityName[], guest: GuestMemory): Record<string, Record<string, HostFunction>> {
  const abi = new Abi(guest);
  const fn = (name: CapabilityName, f: string): HostFunction => {
    const host = world[`ice:agent/${name}`]?.[f];
    if (!host) throw new Error(`no host function ice:agent/${name}#${f}`);
    return host;
  };
  const out: Record<string, Record<string, HostFunction>> = {};
  for (const name of imported) {
    switch (name) {
      case 'log': {
        const write = fn('log', 'write');
        out['ice:agent/log@0.1.0'] = {
          write: (level, ptr, len, ret) => unit(abi, ret as number, write(abi.level(level as number), abi.string(ptr as number, len as number)) as Answer),
        };
        break;
      }
      case 'clock': {
        const now = fn('clock', 'now');
        out['ice:agent/clock@0.1.0'] = {
          now: (ret) => {
            const answer = now() as Answer;
            if (answer.tag === 'ok') {
              const p = abi.area(ret as number, 16);
              abi.u8(p, 0);
              abi.u64(p + 8, answer.val as bigint);
            } else fail(abi, ret as number, 8, answer.val);
          },
        };
        break;
      }
      case 'random': {
        const bytes = fn('random', 'bytes');
        out['ice:agent/random@0.1.0'] = {
          bytes: (len, ret) => {
            const answer = bytes((len as number) >>> 0) as Answer;
            if (answer.tag === 'err') return fail(abi, ret as number, 4, answer.val);
            const [ptr, n] = abi.lowerBytes(answer.val as Uint8Array);
            const p = abi.area(ret as number, 12);
            abi.u8(p, 0);
            abi.u32(p + 4, ptr);
            abi.u32(p + 8, n);
          },
        };
        break;
      }
      case 'kv': {
        const [get, set, del, keys] = [fn('kv', 'get'), fn('kv', 'set'), fn('kv', 'delete'), fn('kv', 'keys')];
        out['ice:agent/kv@0.1.0'] = {
          get: (kp, kl, ret) => {
            const answer = get(abi.string(kp as number, kl as number)) as Answer;
            if (answer.tag === 'err') return fail(abi, ret as number, 4, answer.val);
            const value = answer.val as string | null | undefined;
            if (value === null || value === undefined) {
              const p = abi.area(ret as number, 8);
              abi.u8(p, 0);
              abi.u8(p + 4, 0);
              return;
            }
            const [ptr, n] = abi.lowerString(value);
            const p = abi.area(ret as number, 16);
            abi.u8(p, 0);
            abi.u8(p + 4, 1);
            abi.u32(p + 8, ptr);
            abi.u32(p + 12, n);
          },
          set: (kp, kl, vp, vl, ret) =>
            unit(abi, ret as number, set(abi.string(kp as number, kl as number), abi.string(vp as number, vl as number)) as Answer),
          delete: (kp, kl, ret) => unit(abi, ret as number, del(abi.string(kp as number, kl as number)) as Answer),
          keys: (pp, pl, ret) => {
            const answer = keys(abi.string(pp as number, pl as number)) as Answer;
            if (answer.tag === 'err') return fail(abi, ret as number, 4, answer.val);
            const list = answer.val as string[];
            const lowered = list.map((key) => abi.lowerString(key));
            const elements = list.length === 0 ? 4 : abi.alloc(list.length * 8, 4);
            lowered.forEach(([ptr, n], i) => {
              abi.u32(elements + i * 8, ptr);
              abi.u32(elements + i * 8 + 4, n);
            });
            const p = abi.area(ret as number, 12);
            abi.u8(p, 0);
            abi.u32(p + 4, elements);
            abi.u32(p + 8, list.length);
          },
        };
        break;
      }
      case 'http': {
        const fetch = fn('http', 'fetch');
        out['ice:agent/http@0.1.0'] = {
          fetch: (mp, ml, up, ul, hp, hl, bodyTag, bp, bl, ret) => {
            const tag = bodyTag as number;
            if (tag !== 0 && tag !== 1) throw new TypeError(`invalid option discriminant ${tag} for the request body`);
            const request = {
              method: abi.string(mp as number, ml as number),
              url: abi.string(up as number, ul as number),
              headers: abi.stringPairs(hp as number, hl as number, 'name', 'value'),
              ...(tag === 1 ? { body: abi.bytesCopy(bp as number, bl as number) } : {}),
            };
            const answer = fetch(request) as Answer;
            if (answer.tag === 'err') return fail(abi, ret as number, 4, answer.val);
            const response = answer.val as { status: number; headers: Record<string, string>[]; body: Uint8Array };
            const [headers, count] = abi.lowerStringPairs(response.headers, 'name', 'value');
            const [body, size] = abi.lowerBytes(response.body);
            const p = abi.area(ret as number, 24);
            abi.u8(p, 0);
            abi.u16(p + 4, response.status);
            abi.u32(p + 8, headers);
            abi.u32(p + 12, count);
            abi.u32(p + 16, body);
            abi.u32(p + 20, size);
          },
        };
        break;
      }
      case 'model': {
        const complete = fn('model', 'complete');
        out['ice:agent/model@0.1.0'] = {
          complete: (mp, ml, lp, ll, maxTokens, ret) => {
            const request = {
              model: abi.string(mp as number, ml as number),
              messages: abi.stringPairs(lp as number, ll as number, 'role', 'content'),
              maxTokens: (maxTokens as number) >>> 0,
            };
            const answer = complete(request) as Answer;
            if (answer.tag === 'err') return fail(abi, ret as number, 4, answer.val);
            const completion = answer.val as { text: string; usage: { inputTokens: number; outputTokens: number } };
            const [text, length] = abi.lowerString(completion.text);
            const p = abi.area(ret as number, 20);
            abi.u8(p, 0);
            abi.u32(p + 4, text);
            abi.u32(p + 8, length);
            abi.u32(p + 12, completion.usage.inputTokens >>> 0);
            abi.u32(p + 16, completion.usage.outputTokens >>> 0);
          },
        };
        break;
      }
      case 'events': {
        const emit = fn('events', 'emit');
        out['ice:agent/events@0.1.0'] = {
          emit: (kp, kl, pp, pl, ret) =>
            unit(abi, ret as number, emit(abi.string(kp as number, kl as number), abi.string(pp as number, pl as number)) as Answer),
        };
        break;
      }
    }
  }
  return out;
}
