/**
 * The parts of metering that need no binaryen, so the run path never loads it (13 MB of JavaScript, about
 * half a second): the names of the meter imports, the errors, and capMemories — a binary patch of the
 * memory section applied at every load with the policy's limit, so the engine itself refuses growth past
 * the cap — with the small reader of the binary format both use.
 */

/** Module name of the imports the metered code uses; the host supplies them per instance. */
export const METER_MODULE = 'ice:meter';
/** `ice:meter.fuel`: mutable i64 global, the remaining fuel (shared by all core modules of a component instance). */
export const FUEL_GLOBAL = 'fuel';
/** `ice:meter.memory_refused`: mutable i32 global, set to 1 by metered code when a memory.grow returned -1. */
export const MEMORY_REFUSED_GLOBAL = 'memory_refused';
/**
 * `ice:meter.refuel`: function () -> (), imported by preemptible modules only and called when `fuel`
 * went below 0. The host hands fuel out in slices: refuel adds the next slice (so fuel is exact across
 * slices), or leaves `fuel` negative — the budget is spent or the run is past its wall-clock deadline —
 * and the metered code traps. The one point where a run on the calling thread can be preempted.
 */
export const REFUEL_FUNCTION = 'refuel';

/**
 * `trap`: out of fuel traps (worker runs: the worker is terminated at the deadline). `preemptible`: out
 * of fuel calls refuel first (runs on the calling thread, which nothing else can stop).
 */
export type MeterVariant = 'trap' | 'preemptible';

/**
 * `ice:meter.memory_budget`: mutable i32 global, the 64 KiB pages the component instance may still take
 * (limits.memoryMiB less what its core instances hold). Instantiation charges each instance's footprint;
 * metered code charges every memory.grow and refuses (-1) a grow past it. Shared by all core instances,
 * so the limit bounds the component, not each memory.
 */
export const MEMORY_BUDGET_GLOBAL = 'memory_budget';

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

// ---- The component-wide footprint ----

/**
 * What one instance of a core module holds at instantiation: its defined memories (initial pages) and
 * defined tables. Tables are charged to the same budget at TABLE_ELEMENT_BYTES per element, rounded
 * up to whole pages per module; they cannot grow (capModule sets each maximum to its initial size), so
 * the charge at instantiation is all they will ever take.
 */
export interface Footprint {
  readonly memories: number;
  readonly tables: number;
  /** Initial memory pages plus the tables' pages. */
  readonly pages: number;
}

/**
 * A funcref table element in V8 is a tagged pointer plus a dispatch entry; 8 bytes is the order of
 * it, and keeps a million-element table (8 MiB) from hiding outside the budget.
 */
export const TABLE_ELEMENT_BYTES = 8;
/**
 * Host constants, not policy: a component built by `ice build` (or any wit-component output) uses at
 * most a handful of each. They bound the engine's per-instance cost (each memory reserves guard
 * regions of address space) that the page budget does not see.
 */
export const MAX_CORE_INSTANCES = 32;
export const MAX_MEMORIES = 8;
export const MAX_TABLES = 32;

/** The custom section that carries a capped module's Footprint to whoever instantiates it (any thread). */
export const FOOTPRINT_SECTION = 'ice:footprint';
const TABLE_SECTION = 4;

/**
 * capMemories, then each defined table's maximum set to its initial size, then the module's Footprint
 * appended as a FOOTPRINT_SECTION custom section (a guest module that already has one is refused).
 * @throws MemoryCapError, MeterError as capMemories; MeterError for a table this reader cannot cap
 */
export function capModule(bytes: Uint8Array, maxPages: number): Uint8Array {
  if (sectionsOf(bytes).some((s) => s.customName === FOOTPRINT_SECTION)) {
    throw new MeterError(`it has a custom section named ${FOOTPRINT_SECTION}, which only the host may write`);
  }
  let out = capMemories(bytes, maxPages);
  const sections = sectionsOf(out);
  const memorySection = sections.find((s) => s.id === MEMORY_SECTION);
  const memories = memorySection ? readMemories(out, memorySection) : [];
  const tableSection = sections.find((s) => s.id === TABLE_SECTION);
  let elements = 0;
  let tables = 0;
  if (tableSection) {
    const capped = capTables(out, tableSection);
    tables = capped.tables;
    elements = capped.elements;
    out = replaceSection(out, tableSection, capped.content);
  }
  const pages = memories.reduce((sum, m) => sum + m.initial, 0) + Math.ceil((elements * TABLE_ELEMENT_BYTES) / WASM_PAGE_BYTES);
  const payload: number[] = [];
  writeLeb(payload, FOOTPRINT_SECTION.length);
  payload.push(...Buffer.from(FOOTPRINT_SECTION, 'utf8'));
  writeLeb(payload, memories.length);
  writeLeb(payload, tables);
  writeLeb(payload, pages);
  const header: number[] = [0];
  writeLeb(header, payload.length);
  const result = new Uint8Array(out.length + header.length + payload.length);
  result.set(out);
  result.set(header, out.length);
  result.set(payload, out.length + header.length);
  return result;
}

const WASM_PAGE_BYTES = 65_536;

function capTables(bytes: Uint8Array, section: Section): { content: number[]; tables: number; elements: number } {
  const reader = new Reader(bytes, section.contentStart, section.end);
  const content: number[] = [];
  const count = reader.u32();
  writeLeb(content, count);
  let elements = 0;
  for (let i = 0; i < count; i++) {
    if (bytes[reader.pos] === 0x40) throw new MeterError(`defined table ${i} has an initializer expression, which ICE does not support`);
    const typeStart = reader.pos;
    reader.skipValueType();
    content.push(...bytes.subarray(typeStart, reader.pos));
    const flags = reader.byte();
    if (flags & ~HAS_MAX) throw new MeterError(`defined table ${i} has unsupported limits flags 0x${flags.toString(16)}`);
    const initial = reader.u32();
    if (flags & HAS_MAX) reader.u32();
    content.push(HAS_MAX);
    writeLeb(content, initial);
    writeLeb(content, initial);
    elements += initial;
  }
  reader.expectEnd('table section');
  return { content, tables: count, elements };
}

/** The Footprint capModule wrote into a compiled module. @throws Error when there is none (not capped by this host). */
export function footprintOf(module: WebAssembly.Module): Footprint {
  const sections = WebAssembly.Module.customSections(module, FOOTPRINT_SECTION);
  if (sections.length !== 1) throw new Error(`core module has ${sections.length} ${FOOTPRINT_SECTION} sections, expected the one the host writes`);
  const bytes = new Uint8Array(sections[0]!);
  const reader = new Reader(bytes, 0, bytes.length);
  return { memories: reader.u32(), tables: reader.u32(), pages: reader.u32() };
}

/** The running total of a component instance's core instances, checked against the host caps and the budget. */
export class FootprintTally {
  instances = 0;
  memories = 0;
  tables = 0;
  pages = 0;

  constructor(readonly budgetPages: number) {}

  /** Adds one core instance. @returns why it does not fit (a sentence naming the numbers and the fix), or undefined. */
  add(footprint: Footprint): string | undefined {
    this.instances += 1;
    this.memories += footprint.memories;
    this.tables += footprint.tables;
    this.pages += footprint.pages;
    return this.check();
  }

  /** Why the instances added so far do not fit, or undefined. */
  check(): string | undefined {
    if (this.instances > MAX_CORE_INSTANCES) return `it creates more than ${MAX_CORE_INSTANCES} core instances, the host's limit per component`;
    if (this.memories > MAX_MEMORIES) return `it defines more than ${MAX_MEMORIES} linear memories, the host's limit per component`;
    if (this.tables > MAX_TABLES) return `it defines more than ${MAX_TABLES} tables, the host's limit per component`;
    if (this.pages > this.budgetPages) {
      return (
        `its core instances need at least ${mib(this.pages)} MiB of memories and tables at instantiation, over limits.memoryMiB ` +
        `(${mib(this.budgetPages)} MiB, the budget of the whole component): raise limits.memoryMiB in the policy`
      );
    }
    return undefined;
  }
}

function mib(pages: number): number {
  return Math.ceil(pages / PAGES_PER_MIB);
}

// ---- Reading the binary format (https://webassembly.github.io/spec/core/binary/modules.html) ----

export const IMPORT_SECTION = 2;
export const FUNCTION_SECTION = 3;
export const MEMORY_SECTION = 5;
const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
// Limits flags: bit 0 a maximum follows, bit 1 shared, bit 2 64-bit addresses; others are proposals (custom page sizes).
const HAS_MAX = 0x01;
const SHARED = 0x02;
const MEMORY64 = 0x04;

export interface Section {
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
export function sectionsOf(bytes: Uint8Array): Section[] {
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

export function readMemories(bytes: Uint8Array, section: Section): Memory[] {
  const reader = new Reader(bytes, section.contentStart, section.end);
  const memories: Memory[] = [];
  for (let count = reader.u32(); count > 0; count--) memories.push(reader.memoryLimits(`defined memory ${memories.length}`));
  reader.expectEnd('memory section');
  return memories;
}

const utf8 = new TextDecoder();

export class Reader {
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
