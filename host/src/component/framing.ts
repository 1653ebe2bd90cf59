/**
 * The binary framing of a component, checked before any decoder sees it: every section's declared
 * size, and every leading vector count and code-body size of the core modules inside, must fit in the
 * bytes that actually follow. wasm-tools (inside jco) reserves memory for a declared size before it
 * checks it against the input: 15 bytes declaring a 4 GiB section made it allocate gigabytes and then
 * panic, which also left it unusable for the rest of the process. This is a guard on sizes only; the
 * decoding and validation are wasm-tools'.
 */
import { LoadError } from './errors.js';

const COMPONENT_SECTION_CORE_MODULE = 1;
const COMPONENT_SECTION_COMPONENT = 4;
/** Component sections that start with a vector count (core instance, core type, instance, alias, type, canon, import, export). */
const COMPONENT_VECTORS = new Set([2, 3, 5, 6, 7, 8, 10, 11]);
/** Core sections that start with a vector count (type, import, function, table, memory, global, export, elem, code, data). */
const CORE_VECTORS = new Set([1, 2, 3, 4, 5, 6, 7, 9, 10, 11]);
const CORE_CODE = 10;
const MAX_DEPTH = 16;

class Framing {
  constructor(
    private readonly bytes: Uint8Array,
    private readonly origin: string,
  ) {}

  fail(offset: number, what: string): never {
    throw new LoadError('malformed', this.origin, `${this.origin} is not a valid component: ${what} (at byte ${offset})`);
  }

  /** An unsigned LEB128 u32 at `at`, not reading past `end`. */
  u32(at: number, end: number): [number, number] {
    let value = 0;
    for (let shift = 0, i = at; shift < 35; shift += 7, i++) {
      if (i >= end) this.fail(at, 'a size runs past the end of its section');
      const byte = this.bytes[i]!;
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) {
        if (value > 0xffffffff) this.fail(at, 'a size does not fit in 32 bits');
        return [value, i + 1];
      }
    }
    return this.fail(at, 'a size is longer than 5 bytes');
  }

  /** Sections of a component or core module from `start` (after its 8-byte header) to `end`. */
  sections(start: number, end: number, core: boolean, depth: number): void {
    if (depth > MAX_DEPTH) this.fail(start, `components are nested more than ${MAX_DEPTH} deep`);
    let at = start;
    while (at < end) {
      const id = this.bytes[at]!;
      const [size, body] = this.u32(at + 1, end);
      if (size > end - body) this.fail(at, `section ${id} declares ${size} bytes, but only ${end - body} follow`);
      const sectionEnd = body + size;
      if (core) this.coreSection(id, body, sectionEnd);
      else this.componentSection(id, body, sectionEnd, depth);
      at = sectionEnd;
    }
  }

  private componentSection(id: number, body: number, end: number, depth: number): void {
    if (id === COMPONENT_SECTION_CORE_MODULE || id === COMPONENT_SECTION_COMPONENT) {
      if (end - body < 8) this.fail(body, `a nested ${id === COMPONENT_SECTION_COMPONENT ? 'component' : 'core module'} is shorter than its header`);
      this.sections(body + 8, end, id === COMPONENT_SECTION_CORE_MODULE, depth + 1);
    } else if (COMPONENT_VECTORS.has(id)) {
      this.count(body, end);
    }
  }

  private coreSection(id: number, body: number, end: number): void {
    if (!CORE_VECTORS.has(id)) return;
    const [count, first] = this.count(body, end);
    if (id !== CORE_CODE) return;
    let at = first;
    for (let i = 0; i < count; i++) {
      const [size, code] = this.u32(at, end);
      if (size > end - code) this.fail(at, `function body ${i} declares ${size} bytes, but only ${end - code} follow`);
      at = code + size;
    }
  }

  /** A vector count: each entry takes at least one byte, so it cannot exceed the bytes left. */
  private count(body: number, end: number): [number, number] {
    const [count, first] = this.u32(body, end);
    if (count > end - first) this.fail(body, `a section declares ${count} entries in ${end - first} bytes`);
    return [count, first];
  }
}

/** @throws LoadError (malformed) naming the first size that does not fit. Call after checkHeader. */
export function checkFraming(bytes: Uint8Array, origin: string): void {
  new Framing(bytes, origin).sections(8, bytes.length, false, 0);
}
