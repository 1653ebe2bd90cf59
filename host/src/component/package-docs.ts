/**
 * WIT doc comments, from a component's top-level `package-docs` custom section when it carries one
 * (wit-component's format: one version byte, then JSON `{ docs?, worlds?: { <world>: { docs?, funcs?,
 * types?, interfaces? } }, interfaces?: { <name>: { docs?, funcs?: { <fn>: text }, types?: { <type>:
 * { docs?, items?: { <field or case>: text } } } } } }`). `ice build` copies it there from the
 * embedded WIT; other toolchains may not, and then functions simply have no description.
 *
 * The framing was checked before this runs (framing.ts), so sizes are trusted to fit.
 */
import { interfaceShortName } from './export-types.js';
import type { TypedFunction, WitType } from './wit-types.js';

const CUSTOM_SECTION = 0;
const SECTION_NAME = 'package-docs';
const MAX_DOCS_BYTES = 1 << 20;

interface TypeDocs {
  docs?: string;
  items?: Record<string, string>;
}
interface ItemDocs {
  docs?: string;
  funcs?: Record<string, string>;
  types?: Record<string, TypeDocs>;
  interfaces?: Record<string, ItemDocs>;
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

/** The component's own (top-level) `package-docs` section, parsed; undefined when absent or unreadable. */
export function readPackageDocs(bytes: Uint8Array): PackageDocs | undefined {
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at]!;
    const [size, body] = leb(bytes, at + 1);
    const end = body + size;
    if (id === CUSTOM_SECTION) {
      const [nameLength, nameAt] = leb(bytes, body);
      const name = new TextDecoder().decode(bytes.subarray(nameAt, nameAt + nameLength));
      const payload = bytes.subarray(nameAt + nameLength, end);
      if (name === SECTION_NAME && payload.length > 1 && payload.length <= MAX_DOCS_BYTES) {
        try {
          const parsed: unknown = JSON.parse(new TextDecoder().decode(payload.subarray(1)));
          return parsed !== null && typeof parsed === 'object' ? (parsed as PackageDocs) : undefined;
        } catch {
          return undefined; // docs are a courtesy: unreadable ones are ignored, never a load failure
        }
      }
    }
    at = end;
  }
  return undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/** The functions with their doc comments (and their named types') attached. */
export function withDocs(functions: readonly TypedFunction[], docs: PackageDocs | undefined): TypedFunction[] {
  if (!docs) return [...functions];
  const worlds = Object.values(docs.worlds ?? {});
  return functions.map((fn) => {
    const scope = fn.interface === undefined ? undefined : (docs.interfaces?.[interfaceShortName(fn.interface)] ?? worlds.map((w) => w.interfaces?.[interfaceShortName(fn.interface!)]).find(Boolean));
    const own = fn.interface === undefined ? worlds.map((w) => text(w.funcs?.[fn.func])).find(Boolean) : text(scope?.funcs?.[fn.func]);
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
        ...(text(own?.docs) ? { docs: text(own?.docs)! } : {}),
        fields: type.fields.map((f) => ({ ...f, type: sub(f.type), ...(text(own?.items?.[f.name]) ? { docs: text(own?.items?.[f.name])! } : {}) })),
      };
    }
    case 'variant': {
      const own = type.name ? types[type.name] : undefined;
      return {
        ...type,
        ...(text(own?.docs) ? { docs: text(own?.docs)! } : {}),
        cases: type.cases.map((c) => ({ ...c, ...(c.type ? { type: sub(c.type) } : {}), ...(text(own?.items?.[c.name]) ? { docs: text(own?.items?.[c.name])! } : {}) })),
      };
    }
    case 'enum':
    case 'flags': {
      const own = type.name ? text(types[type.name]?.docs) : undefined;
      return own ? { ...type, docs: own } : type;
    }
    default:
      return type;
  }
}
