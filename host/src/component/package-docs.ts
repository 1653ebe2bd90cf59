/**
 * WIT doc comments, from a component's custom sections in wit-component's `package-docs` model
 * (wit-parser metadata.rs, format 1: one version byte, then JSON `{ package?, docs?, worlds?: { <w>: {
 * docs?, func_exports?: { <fn>: { docs } }, interface_exports?: { <i>: { docs?, funcs? } }, types? } },
 * interfaces?: { <i>: { docs?, funcs?: { <fn>: { docs } }, types?: { <t>: { docs?, items?: { <field or
 * case>: text } } } } } }`). `ice:package-docs` (written by `ice build`: the guest's whole package under
 * its own names) is read first; the standard `package-docs` otherwise. A component without either
 * simply has no descriptions.
 *
 * The framing was checked before this runs (framing.ts), so sizes are trusted to fit.
 */
import { interfaceShortName } from './export-types.js';
import type { TypedFunction, WitType } from './wit-types.js';

const CUSTOM_SECTION = 0;
const SECTIONS = ['ice:package-docs', 'package-docs'];
const MAX_DOCS_BYTES = 1 << 20;

/** A doc entry: the text itself, or `{ docs }`. */
type Doc = string | { docs?: string };
interface TypeDocs {
  docs?: string;
  items?: Record<string, Doc>;
}
interface ItemDocs {
  docs?: string;
  funcs?: Record<string, Doc>;
  func_exports?: Record<string, Doc>;
  types?: Record<string, TypeDocs>;
  interfaces?: Record<string, ItemDocs>;
  interface_exports?: Record<string, ItemDocs>;
}
export interface PackageDocs extends ItemDocs {
  worlds?: Record<string, ItemDocs>;
}

function leb(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    const byte = bytes[at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) break;
  }
  return [value, at];
}

/** The component's own (top-level) docs section, parsed; undefined when absent or unreadable. */
export function readPackageDocs(bytes: Uint8Array): PackageDocs | undefined {
  const found = new Map<string, Uint8Array>();
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at]!;
    const [size, body] = leb(bytes, at + 1);
    const end = body + size;
    if (id === CUSTOM_SECTION) {
      const [nameLength, nameAt] = leb(bytes, body);
      const name = new TextDecoder().decode(bytes.subarray(nameAt, nameAt + nameLength));
      if (SECTIONS.includes(name)) found.set(name, bytes.subarray(nameAt + nameLength, end));
    }
    at = end;
  }
  for (const name of SECTIONS) {
    const payload = found.get(name);
    if (!payload || payload.length < 2 || payload.length > MAX_DOCS_BYTES) continue;
    try {
      const parsed: unknown = JSON.parse(new TextDecoder().decode(payload.subarray(1)));
      if (parsed !== null && typeof parsed === 'object') return parsed as PackageDocs;
    } catch {
      // docs are a courtesy: unreadable ones are ignored, never a load failure
    }
  }
  return undefined;
}

function text(value: Doc | undefined): string | undefined {
  const raw = typeof value === 'string' ? value : value?.docs;
  return typeof raw === 'string' && raw.trim() !== '' ? raw.trim() : undefined;
}

/** The functions with their doc comments (and their named types') attached. */
export function withDocs(functions: readonly TypedFunction[], docs: PackageDocs | undefined): TypedFunction[] {
  if (!docs) return [...functions];
  const worlds = Object.values(docs.worlds ?? {});
  return functions.map((fn) => {
    const short = fn.interface === undefined ? undefined : interfaceShortName(fn.interface);
    const scope = short === undefined ? undefined : (docs.interfaces?.[short] ?? worlds.map((w) => w.interface_exports?.[short]).find(Boolean));
    const own = fn.interface === undefined ? worlds.map((w) => text(w.func_exports?.[fn.func] ?? w.funcs?.[fn.func])).find(Boolean) : text(scope?.funcs?.[fn.func]);
    const types = { ...Object.assign({}, ...worlds.map((w) => w.types ?? {})), ...(scope?.types ?? {}) } as Record<string, TypeDocs>;
    const documented = (type: WitType): WitType => documentType(type, types);
    return {
      ...fn,
      ...(own ? { docs: own } : {}),
      params: fn.params.map((p) => ({ ...p, type: documented(p.type) })),
      ...(fn.result ? { result: documented(fn.result) } : {}),
    };
  });
}

function documentType(type: WitType, types: Record<string, TypeDocs>): WitType {
  const sub = (t: WitType) => documentType(t, types);
  switch (type.kind) {
    case 'list':
      return { ...type, element: sub(type.element) };
    case 'option':
      return { ...type, some: sub(type.some) };
    case 'result':
      return { kind: 'result', ...(type.ok ? { ok: sub(type.ok) } : {}), ...(type.err ? { err: sub(type.err) } : {}) };
    case 'tuple':
      return { ...type, items: type.items.map(sub) };
    case 'record': {
      const own = type.name ? types[type.name] : undefined;
      return {
        ...type,
        ...(text(own) ? { docs: text(own)! } : {}),
        fields: type.fields.map((f) => ({ ...f, type: sub(f.type), ...(text(own?.items?.[f.name]) ? { docs: text(own?.items?.[f.name])! } : {}) })),
      };
    }
    case 'variant': {
      const own = type.name ? types[type.name] : undefined;
      return {
        ...type,
        ...(text(own) ? { docs: text(own)! } : {}),
        cases: type.cases.map((c) => ({ ...c, ...(c.type ? { type: sub(c.type) } : {}), ...(text(own?.items?.[c.name]) ? { docs: text(own?.items?.[c.name])! } : {}) })),
      };
    }
    case 'enum':
    case 'flags': {
      const own = type.name ? text(types[type.name]) : undefined;
      return own ? { ...type, docs: own } : type;
    }
    default:
      return type;
  }
}
