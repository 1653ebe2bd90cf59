/**
 * inspect: is this a component at all, and what does it import and export?
 *
 * The binary header is checked by hand first (cheap, and the only way to tell a core module from a
 * component with a helpful message); the structure is then validated by jco's wasm-tools
 * (`componentWit` decodes and validates the whole component and prints its world).
 */
import { sha256Hex } from '../core/digest.js';
import { LoadError } from './errors.js';
import { componentForms, exportedFunctions, type ExportReading } from './export-types.js';
import { checkFraming } from './framing.js';
import { readPackageDocs, withDocs } from './package-docs.js';
import { importSignatures, type ImportSignatures } from './signatures.js';

export interface ComponentInfo {
  /** sha256 hex of the component bytes: its identity in caches and in the ledger. */
  readonly digest: string;
  readonly size: number;
  /** Imported names as the component declares them, e.g. `ice:agent/kv@0.1.0`, `foo: func(...)`. */
  readonly imports: readonly WorldItem[];
  readonly exports: readonly WorldItem[];
  /** The component's world as WIT text, as printed by wasm-tools. */
  readonly wit: string;
  /** The exact types it declares for each imported instance (see signatures.ts). */
  readonly signatures: ImportSignatures;
  /** Its callable exports with their types and docs, whether it is a WASI command, and what cannot be called. */
  readonly exported: ExportReading;
}

/** The parts of jco inspection needs (passed in: a cached load never loads jco). */
export interface Decoder {
  componentWit(bytes: Uint8Array): Promise<string>;
  print(bytes: Uint8Array): Promise<string>;
}

/** One `import`/`export` line of the component's world. */
export interface WorldItem {
  /** `ice:agent/kv@0.1.0` for an interface, `run` for a function, `x` for an inline interface. */
  readonly name: string;
  readonly kind: 'interface' | 'function' | 'inline-interface' | 'other';
  /** The declaration after the name for functions, e.g. `func(input: string) -> result<string, string>`. */
  readonly signature?: string;
}

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d];

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** Refuses anything that is not a component-model binary, with a message that says what it is instead. */
export function checkHeader(bytes: Uint8Array, origin: string): void {
  if (bytes.length === 0) {
    throw new LoadError('empty', origin, `${origin} is empty (0 bytes): expected a WebAssembly component`);
  }
  const head = bytes.subarray(0, 8);
  if (bytes.length < 8 || !WASM_MAGIC.every((b, i) => bytes[i] === b)) {
    const looksWasm = bytes.length < 8 && WASM_MAGIC.slice(0, bytes.length).every((b, i) => bytes[i] === b);
    throw new LoadError(
      'not-wasm',
      origin,
      looksWasm
        ? `${origin} is truncated: only ${bytes.length} bytes, shorter than a WebAssembly header`
        : `${origin} is not a WebAssembly binary (it starts with ${hex(head)}; a component starts with 00 61 73 6d 0d 00 01 00)`,
    );
  }
  const version = bytes[4]! | (bytes[5]! << 8);
  const layer = bytes[6]! | (bytes[7]! << 8);
  if (layer === 0) {
    throw new LoadError(
      'core-module',
      origin,
      `${origin} is a core WebAssembly module, not a component: ICE runs components that import the ice:agent world; ` +
        'build the guest with `ice build <source> -o <out.wasm>`',
    );
  }
  if (layer !== 1 || version !== 0x0d) {
    throw new LoadError(
      'unsupported-version',
      origin,
      `${origin} has an unsupported component binary version (version 0x${version.toString(16)}, layer ${layer}); ` +
        'ICE reads component-model binaries of version 0x0d (wasm-tools / jco 1.x)',
    );
  }
}

export async function inspectComponent(bytes: Uint8Array, origin: string, decoder: Decoder): Promise<ComponentInfo> {
  checkHeader(bytes, origin);
  checkFraming(bytes, origin);
  let wit: string;
  let text: string;
  try {
    wit = await decoder.componentWit(bytes);
    text = await decoder.print(bytes);
  } catch (error) {
    // A panic inside wasm-tools says nothing about the input beyond "trap"; say what happened instead.
    const reason = error instanceof WebAssembly.RuntimeError ? 'the decoder failed on it (wasm-tools panicked)' : firstLine(error);
    throw new LoadError('malformed', origin, `${origin} is not a valid component: ${reason}`);
  }
  const { imports, exports } = parseWorld(wit);
  // One read of the text serves both: it is 185 MB for a componentize-js component.
  const forms = componentForms(text);
  const reading = exportedFunctions(text, forms);
  const exported = { ...reading, functions: withDocs(reading.functions, readPackageDocs(bytes)) };
  return { digest: sha256Hex(bytes), size: bytes.length, imports, exports, wit, signatures: importSignatures(text, forms), exported };
}


function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  // wasm-tools errors carry a "Caused by" chain; the first lines say what and where.
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && l !== 'Caused by:')
    .slice(0, 3)
    .join(': ');
}

/**
 * Reads the import/export lines of the single world wasm-tools prints for a component. Only the
 * world's own top level is read: nested `interface { ... }` bodies are skipped by brace depth.
 */
export function parseWorld(wit: string): { imports: WorldItem[]; exports: WorldItem[] } {
  const imports: WorldItem[] = [];
  const exports: WorldItem[] = [];
  const start = wit.search(/^world\s+[^\s{]+\s*\{/m);
  if (start < 0) return { imports, exports };
  let depth = 0;
  let statement = '';
  for (const line of wit.slice(start).split('\n')) {
    const text = line.trim();
    const opens = (text.match(/\{/g) ?? []).length;
    const closes = (text.match(/\}/g) ?? []).length;
    if (depth === 1 && (text.startsWith('import ') || text.startsWith('export ') || statement)) {
      statement = statement ? `${statement} ${text}` : text;
      if (text.endsWith(';') || opens > closes) {
        const item = parseItem(statement);
        (statement.startsWith('import ') ? imports : exports).push(item);
        statement = '';
      }
    }
    depth += opens - closes;
    if (depth <= 0 && opens + closes > 0) break;
  }
  return { imports, exports };
}

function parseItem(statement: string): WorldItem {
  const body = statement.replace(/^(import|export)\s+/, '').replace(/;$/, '').trim();
  const named = /^([%a-z0-9][\w-]*)\s*:\s*(.*)$/i.exec(body);
  if (named && !body.includes('/')) {
    const rest = named[2]!.trim();
    if (rest.startsWith('func') || rest.startsWith('async func')) {
      return { name: named[1]!.replace(/^%/, ''), kind: 'function', signature: rest };
    }
    if (rest.startsWith('interface')) return { name: named[1]!.replace(/^%/, ''), kind: 'inline-interface' };
    return { name: named[1]!, kind: 'other', signature: rest };
  }
  return { name: body, kind: 'interface' };
}
