/**
 * The WIT value types a typed export may use, as plain data (it crosses to a run's worker and into
 * the ledger), and their WIT rendering for messages and `ice inspect`. Resources, streams, futures and
 * error contexts are not values a caller outside the component could supply, so they are not here: a
 * function that uses one is refused at load (export-types.ts).
 */

export const INTEGER_KINDS = ['s8', 'u8', 's16', 'u16', 's32', 'u32', 's64', 'u64'] as const;
export type IntegerKind = (typeof INTEGER_KINDS)[number];
export type Primitive = 'bool' | IntegerKind | 'f32' | 'f64' | 'char' | 'string';

export interface Field {
  readonly name: string;
  readonly type: WitType;
  readonly docs?: string;
}

export interface Case {
  readonly name: string;
  readonly type?: WitType;
  readonly docs?: string;
}

/** `name` and `docs`: when the type is a named WIT type (`record point`), for schemas and messages. */
interface Named {
  readonly name?: string;
  readonly docs?: string;
}

export type WitType =
  | { readonly kind: Primitive }
  | { readonly kind: 'list'; readonly element: WitType }
  | { readonly kind: 'option'; readonly some: WitType }
  | { readonly kind: 'result'; readonly ok?: WitType; readonly err?: WitType }
  | { readonly kind: 'tuple'; readonly items: readonly WitType[] }
  | ({ readonly kind: 'record'; readonly fields: readonly Field[] } & Named)
  | ({ readonly kind: 'variant'; readonly cases: readonly Case[] } & Named)
  | ({ readonly kind: 'enum'; readonly cases: readonly string[] } & Named)
  | ({ readonly kind: 'flags'; readonly flags: readonly string[] } & Named);

export interface Param {
  readonly name: string;
  readonly type: WitType;
}

/** One callable export of a component. */
export interface TypedFunction {
  /** How ICE names it: `add`, or `geometry.area` for `area` of an exported interface `…/geometry`. */
  readonly name: string;
  /** The exported interface it belongs to (`example:calc/geometry@0.1.0`); absent for a world-level function. */
  readonly interface?: string;
  /** The function's own WIT name (`area`). */
  readonly func: string;
  readonly params: readonly Param[];
  readonly result?: WitType;
  /** Its WIT doc comment, when the component carries a `package-docs` section. */
  readonly docs?: string;
}

const INTEGERS = new Set<string>(INTEGER_KINDS);

export function isInteger(kind: string): kind is IntegerKind {
  return INTEGERS.has(kind);
}

/** WIT text: named types by name (`point`), anonymous ones by structure. */
export function witText(type: WitType | undefined): string {
  if (type === undefined) return '_';
  switch (type.kind) {
    case 'list':
      return `list<${witText(type.element)}>`;
    case 'option':
      return `option<${witText(type.some)}>`;
    case 'result':
      return type.ok === undefined && type.err === undefined ? 'result' : `result<${witText(type.ok)}, ${witText(type.err)}>`;
    case 'tuple':
      return `tuple<${type.items.map(witText).join(', ')}>`;
    case 'record':
      return type.name ?? `record { ${type.fields.map((f) => `${f.name}: ${witText(f.type)}`).join(', ')} }`;
    case 'variant':
      return type.name ?? `variant { ${type.cases.map((c) => (c.type ? `${c.name}(${witText(c.type)})` : c.name)).join(', ')} }`;
    case 'enum':
      return type.name ?? `enum { ${type.cases.join(', ')} }`;
    case 'flags':
      return type.name ?? `flags { ${type.flags.join(', ')} }`;
    default:
      return type.kind;
  }
}

/** `func(a: u32, b: u32) -> u32`. */
export function signatureText(fn: Pick<TypedFunction, 'params' | 'result'>): string {
  const params = fn.params.map((p) => `${p.name}: ${witText(p.type)}`).join(', ');
  return `func(${params})${fn.result === undefined ? '' : ` -> ${witText(fn.result)}`}`;
}
