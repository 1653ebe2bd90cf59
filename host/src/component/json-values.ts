/**
 * JSON ⇄ the values jco's generated bindings take and give, for a WitType. The JSON side is what
 * `ice call`, MCP clients and the ledger see; json-schema.ts describes exactly this mapping:
 *
 *   bool, u8…u32, s8…s32      JSON boolean / integer in the type's range
 *   u64, s64                  decimal string (any value in range); a JSON integer is accepted as input
 *                             when it is a safe integer (|n| ≤ 2^53−1); output is always a string
 *   f32, f64                  number, or "NaN" / "Infinity" / "-Infinity" (JSON has no such numbers)
 *   char                      a one-character string (one Unicode scalar value)
 *   string                    string (well-formed: a lone surrogate is refused)
 *   list<T>                   array
 *   option<T>                 null or T; when T is itself an option, {"tag":"none"} / {"tag":"some","val":…}
 *   result<T, E>              {"tag":"ok","val":…} / {"tag":"err","val":…} ("val" absent without a payload)
 *   tuple<…>                  array of exactly that length
 *   record                    object with every field (WIT names), nothing else
 *   variant                   {"tag":"<case>","val":…} ("val" absent without a payload)
 *   enum                      the case name
 *   flags                     array of the names of the flags set
 *
 * On jco's side: records and flags use lowerCamelCase keys, 64-bit integers are bigints, lists of
 * numbers are typed arrays, an option of an option is tagged, results and variants are {tag, val}.
 * Every input value is checked; the first bad one is reported with its path (`points[2].x`).
 */
import { isInteger, type IntegerKind, type TypedFunction, type WitType } from './wit-types.js';

/** A JSON value that does not fit the parameter's type: `path` names where. */
export class ArgumentError extends Error {
  override readonly name = 'ArgumentError';
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const RANGES: Readonly<Record<IntegerKind, readonly [bigint, bigint]>> = {
  s8: [-(2n ** 7n), 2n ** 7n - 1n],
  u8: [0n, 2n ** 8n - 1n],
  s16: [-(2n ** 15n), 2n ** 15n - 1n],
  u16: [0n, 2n ** 16n - 1n],
  s32: [-(2n ** 31n), 2n ** 31n - 1n],
  u32: [0n, 2n ** 32n - 1n],
  s64: [-(2n ** 63n), 2n ** 63n - 1n],
  u64: [0n, 2n ** 64n - 1n],
};

export function integerRange(kind: IntegerKind): readonly [bigint, bigint] {
  return RANGES[kind];
}

type TypedArrayConstructor =
  | typeof Int8Array
  | typeof Uint8Array
  | typeof Int16Array
  | typeof Uint16Array
  | typeof Int32Array
  | typeof Uint32Array
  | typeof BigInt64Array
  | typeof BigUint64Array
  | typeof Float32Array
  | typeof Float64Array;

/** jco lifts and lowers a list of these as a typed array. */
const TYPED_LISTS: Readonly<Record<string, TypedArrayConstructor>> = {
  s8: Int8Array,
  u8: Uint8Array,
  s16: Int16Array,
  u16: Uint16Array,
  s32: Int32Array,
  u32: Uint32Array,
  s64: BigInt64Array,
  u64: BigUint64Array,
  f32: Float32Array,
  f64: Float64Array,
};

const DECIMAL = /^-?(0|[1-9][0-9]*)$/;
/** With the u flag a surrogate pair is one code point, so this matches only an unpaired surrogate. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const NON_FINITE: Readonly<Record<string, number>> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, '-Infinity': Number.NEGATIVE_INFINITY };

/** jco's name for a record field or flag: heck's lowerCamelCase of the WIT name (`x2-y` → `x2Y`, `HTTP-ok` → `httpOk`). */
export function jsName(witName: string): string {
  return witName
    .split('-')
    .map((word, i) => (i === 0 ? word.toLowerCase() : word.charAt(0).toUpperCase() + word.slice(1).toLowerCase()))
    .join('');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value.length > 40 ? `a string (${JSON.stringify(value.slice(0, 40))}…)` : `the string ${JSON.stringify(value)}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function tagged(value: unknown, path: string, tags: readonly string[]): { tag: string; val: unknown; hasVal: boolean } {
  if (!isPlainObject(value)) throw new ArgumentError(path, `expected {"tag": ${tags.map((t) => JSON.stringify(t)).join(' | ')}, "val": …}, got ${describe(value)}`);
  const extra = Object.keys(value).filter((k) => k !== 'tag' && k !== 'val');
  if (extra.length > 0) throw new ArgumentError(path, `unexpected key ${JSON.stringify(extra[0])}: a tagged value has only "tag" and "val"`);
  const tag = value['tag'];
  if (typeof tag !== 'string' || !tags.includes(tag)) {
    throw new ArgumentError(`${path}.tag`, `expected one of ${tags.map((t) => JSON.stringify(t)).join(', ')}, got ${describe(tag)}`);
  }
  return { tag, val: value['val'], hasVal: Object.hasOwn(value, 'val') };
}

function payload(type: WitType | undefined, value: { val: unknown; hasVal: boolean }, path: string): unknown {
  if (type === undefined) {
    if (value.hasVal) throw new ArgumentError(`${path}.val`, 'this case carries no value: leave "val" out');
    return undefined;
  }
  if (!value.hasVal) throw new ArgumentError(`${path}.val`, 'missing: this case carries a value');
  return fromJson(type, value.val, `${path}.val`);
}

function integerFromJson(kind: IntegerKind, value: unknown, path: string): number | bigint {
  const [min, max] = RANGES[kind];
  const wide = kind === 's64' || kind === 'u64';
  let big: bigint;
  if (typeof value === 'number' && Number.isInteger(value)) {
    if (wide && !Number.isSafeInteger(value)) {
      throw new ArgumentError(path, `${value} is beyond a JSON-safe integer (±2^53−1): pass ${kind} values that large as a decimal string`);
    }
    big = BigInt(value);
  } else if (wide && typeof value === 'string' && DECIMAL.test(value)) {
    big = BigInt(value);
  } else {
    throw new ArgumentError(path, `expected ${wide ? 'a decimal string or an integer' : 'an integer'} (${kind}), got ${describe(value)}`);
  }
  if (big < min || big > max) throw new ArgumentError(path, `${big} is out of range for ${kind} (${min} to ${max})`);
  return wide ? big : Number(big);
}

function floatFromJson(kind: 'f32' | 'f64', value: unknown, path: string): number {
  if (typeof value === 'number') return kind === 'f32' ? Math.fround(value) : value;
  if (typeof value === 'string' && Object.hasOwn(NON_FINITE, value)) return NON_FINITE[value]!;
  throw new ArgumentError(path, `expected a number (${kind}) or "NaN", "Infinity", "-Infinity", got ${describe(value)}`);
}

/** A JSON value → the value jco's bindings take for `type`. @throws ArgumentError */
export function fromJson(type: WitType, value: unknown, path: string): unknown {
  switch (type.kind) {
    case 'bool':
      if (typeof value !== 'boolean') throw new ArgumentError(path, `expected true or false, got ${describe(value)}`);
      return value;
    case 'f32':
    case 'f64':
      return floatFromJson(type.kind, value, path);
    case 'char': {
      if (typeof value !== 'string') throw new ArgumentError(path, `expected a one-character string, got ${describe(value)}`);
      const cp = value.codePointAt(0);
      if (cp === undefined || String.fromCodePoint(cp) !== value) throw new ArgumentError(path, `expected exactly one character, got ${describe(value)}`);
      if (cp >= 0xd800 && cp <= 0xdfff) throw new ArgumentError(path, 'a lone surrogate is not a Unicode scalar value');
      return value;
    }
    case 'string':
      if (typeof value !== 'string') throw new ArgumentError(path, `expected a string, got ${describe(value)}`);
      if (LONE_SURROGATE.test(value)) throw new ArgumentError(path, 'the string holds a lone surrogate (not valid Unicode)');
      return value;
    case 'list': {
      if (!Array.isArray(value)) throw new ArgumentError(path, `expected an array, got ${describe(value)}`);
      const items = value.map((item, i) => fromJson(type.element, item, `${path}[${i}]`));
      const typed = TYPED_LISTS[type.element.kind];
      return typed ? (typed as unknown as { from(items: unknown[]): unknown }).from(items) : items;
    }
    case 'option': {
      if (type.some.kind === 'option') {
        const t = tagged(value, path, ['none', 'some']);
        return t.tag === 'none' ? (payload(undefined, t, path), { tag: 'none' }) : { tag: 'some', val: payload(type.some, t, path) };
      }
      return value === null ? undefined : fromJson(type.some, value, path);
    }
    case 'result': {
      const t = tagged(value, path, ['ok', 'err']);
      return { tag: t.tag, val: payload(t.tag === 'ok' ? type.ok : type.err, t, path) };
    }
    case 'tuple': {
      if (!Array.isArray(value) || value.length !== type.items.length) {
        throw new ArgumentError(path, `expected an array of ${type.items.length} item${type.items.length === 1 ? '' : 's'}, got ${describe(value)}${Array.isArray(value) ? ` of ${value.length}` : ''}`);
      }
      return type.items.map((item, i) => fromJson(item, value[i], `${path}[${i}]`));
    }
    case 'record': {
      if (!isPlainObject(value)) throw new ArgumentError(path, `expected an object (${type.name ?? 'record'}), got ${describe(value)}`);
      const names = new Set(type.fields.map((f) => f.name));
      const extra = Object.keys(value).find((k) => !names.has(k));
      if (extra !== undefined) throw new ArgumentError(`${path}.${extra}`, `${type.name ?? 'the record'} has no field ${JSON.stringify(extra)} (fields: ${[...names].join(', ')})`);
      const out: Record<string, unknown> = {};
      for (const field of type.fields) {
        if (!Object.hasOwn(value, field.name)) throw new ArgumentError(`${path}.${field.name}`, 'missing: every field of a record is required');
        out[jsName(field.name)] = fromJson(field.type, value[field.name], `${path}.${field.name}`);
      }
      return out;
    }
    case 'variant': {
      const t = tagged(
        value,
        path,
        type.cases.map((c) => c.name),
      );
      const chosen = type.cases.find((c) => c.name === t.tag)!;
      return chosen.type === undefined ? (payload(undefined, t, path), { tag: t.tag }) : { tag: t.tag, val: payload(chosen.type, t, path) };
    }
    case 'enum':
      if (typeof value !== 'string' || !type.cases.includes(value)) {
        throw new ArgumentError(path, `expected one of ${type.cases.map((c) => JSON.stringify(c)).join(', ')}, got ${describe(value)}`);
      }
      return value;
    case 'flags': {
      if (!Array.isArray(value)) throw new ArgumentError(path, `expected an array of flag names (${type.flags.join(', ')}), got ${describe(value)}`);
      const out: Record<string, boolean> = {};
      for (const flag of type.flags) out[jsName(flag)] = false;
      value.forEach((item, i) => {
        if (typeof item !== 'string' || !type.flags.includes(item)) {
          throw new ArgumentError(`${path}[${i}]`, `expected one of ${type.flags.map((f) => JSON.stringify(f)).join(', ')}, got ${describe(item)}`);
        }
        if (out[jsName(item)]) throw new ArgumentError(`${path}[${i}]`, `flag ${JSON.stringify(item)} is listed twice`);
        out[jsName(item)] = true;
      });
      return out;
    }
    default:
      if (isInteger(type.kind)) return integerFromJson(type.kind, value, path);
      throw new ArgumentError(path, `unsupported type ${type.kind}`);
  }
}

function floatToJson(value: number): Json {
  if (Number.isFinite(value)) return value;
  return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
}

/** A result whose JSON would pass the run's output limit: the conversion stops there, before building it. */
export class OutputTooLarge extends Error {
  override readonly name = 'OutputTooLarge';
}

/**
 * A value jco's bindings returned → JSON. The guest's value passed through jco's lifting, which already
 * checked it against the type; a shape that still does not fit is a host bug (a TypeError).
 * `maxBytes`: what is counted on the way is a lower bound of the JSON text's UTF-8 bytes (each item
 * charges at most what it takes), so passing it proves the output over the limit, and a guest
 * returning a list of millions of items is stopped there rather than converted whole. The exact check
 * of the text against limits.maxOutputBytes comes after (sandbox/instance.ts).
 */
export function toJson(type: WitType, value: unknown, maxBytes = Number.POSITIVE_INFINITY): Json {
  // +1: every item is charged a separator, which the outermost one does not have.
  const budget = { left: maxBytes + 1 };
  const spend = (bytes: number): void => {
    budget.left -= bytes;
    if (budget.left < 0) throw new OutputTooLarge(`result is over ${maxBytes} bytes of JSON`);
  };
  const bad = (found: unknown, what: string): never => {
    throw new TypeError(`the component returned ${describe(found)} where ${what} was expected`);
  };
  const convert = (type: WitType, value: unknown): Json => {
    switch (type.kind) {
      case 'bool':
        spend(5); // `true,` / `false`
        return typeof value === 'boolean' ? value : bad(value, 'a bool');
      case 'f32':
      case 'f64':
        spend(2); // a digit and a separator at least
        return typeof value === 'number' ? floatToJson(value) : bad(value, 'a number');
      case 'char':
      case 'string':
      case 'enum':
        if (typeof value !== 'string') return bad(value, `a ${type.kind}`);
        spend(value.length + 3); // UTF-16 units ≤ UTF-8 bytes; quotes and a separator
        return value;
      case 'list': {
        if (!Array.isArray(value) && !ArrayBuffer.isView(value)) return bad(value, 'a list');
        spend(1);
        return Array.from(value as ArrayLike<unknown>, (item) => convert(type.element, item));
      }
      case 'option':
        if (type.some.kind === 'option') {
          const v = value as { tag?: string; val?: unknown };
          spend(14); // {"tag":"none"}
          if (v?.tag === 'none') return { tag: 'none' };
          return v?.tag === 'some' ? { tag: 'some', val: convert(type.some, v.val) } : bad(value, 'a tagged option');
        }
        if (value === undefined || value === null) {
          spend(5);
          return null;
        }
        return convert(type.some, value);
      case 'result': {
        const v = value as { tag?: string; val?: unknown };
        if (v?.tag !== 'ok' && v?.tag !== 'err') return bad(value, 'a result');
        spend(12); // {"tag":"ok"}
        const inner = v.tag === 'ok' ? type.ok : type.err;
        return inner === undefined ? { tag: v.tag } : { tag: v.tag, val: convert(inner, v.val) };
      }
      case 'tuple':
        if (!Array.isArray(value) || value.length !== type.items.length) return bad(value, `a tuple of ${type.items.length}`);
        spend(1);
        return type.items.map((item, i) => convert(item, value[i]));
      case 'record': {
        if (!isPlainObject(value)) return bad(value, 'a record');
        const out: Record<string, Json> = {};
        spend(1); // its braces and separator take more
        for (const field of type.fields) {
          // "name": — the separator after a field is its value's to charge (each item charges its own).
          spend(field.name.length + 3);
          out[field.name] = convert(field.type, value[jsName(field.name)]);
        }
        return out;
      }
      case 'variant': {
        const v = value as { tag?: string; val?: unknown };
        const chosen = type.cases.find((c) => c.name === v?.tag);
        if (!chosen) return bad(value, 'a variant');
        spend(chosen.name.length + 10); // {"tag":"…"}
        return chosen.type === undefined ? { tag: chosen.name } : { tag: chosen.name, val: convert(chosen.type, v.val) };
      }
      case 'flags': {
        if (!isPlainObject(value)) return bad(value, 'flags');
        const set = type.flags.filter((flag) => value[jsName(flag)] === true);
        spend(set.reduce((n, f) => n + f.length + 3, 1));
        return set;
      }
      default:
        if (isInteger(type.kind)) {
          if (type.kind === 's64' || type.kind === 'u64') {
            if (typeof value !== 'bigint') return bad(value, 'a bigint');
            const text = value.toString();
            spend(text.length + 3);
            return text;
          }
          spend(2);
          return typeof value === 'number' && Number.isInteger(value) ? value : bad(value, 'an integer');
        }
        return bad(value, type.kind);
    }
  };
  return convert(type, value);
}

/**
 * A call's arguments, a JSON object keyed by parameter name, → the positional values jco takes. An
 * option parameter may be left out (none); every other one is required; unknown keys are refused.
 */
export function argumentsFromJson(fn: Pick<TypedFunction, 'name' | 'params'>, args: unknown): unknown[] {
  if (!isPlainObject(args)) throw new ArgumentError('arguments', `expected a JSON object keyed by parameter name (${fn.params.map((p) => p.name).join(', ') || 'none'}), got ${describe(args)}`);
  const names = new Set(fn.params.map((p) => p.name));
  const extra = Object.keys(args).find((k) => !names.has(k));
  if (extra !== undefined) {
    throw new ArgumentError(extra, `${fn.name} has no parameter ${JSON.stringify(extra)} (parameters: ${[...names].join(', ') || 'none'})`);
  }
  return fn.params.map((param) => {
    if (!Object.hasOwn(args, param.name)) {
      if (param.type.kind === 'option' && param.type.some.kind !== 'option') return undefined;
      throw new ArgumentError(param.name, 'missing: this parameter is required');
    }
    return fromJson(param.type, args[param.name], param.name);
  });
}
