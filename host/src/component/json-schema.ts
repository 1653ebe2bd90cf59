/**
 * JSON Schema (2020-12) for a typed export's parameters and result: exactly the JSON json-values.ts
 * accepts (`input`) and produces (`output`). The two differ only for 64-bit integers, which are
 * accepted as safe JSON integers too but always produced as decimal strings. WIT has no recursive
 * types, so every schema is inlined (a named type carries its name as `title`).
 */
import { integerRange } from './json-values.js';
import { isInteger, type TypedFunction, type WitType } from './wit-types.js';

export type JsonSchema = { readonly [key: string]: unknown };
type Direction = 'input' | 'output';

export const SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema';
const DECIMAL_PATTERN = '^-?(0|[1-9][0-9]*)$';

function taggedCase(tag: string, val: JsonSchema | undefined): JsonSchema {
  return {
    type: 'object',
    properties: { tag: { const: tag }, ...(val ? { val } : {}) },
    required: val ? ['tag', 'val'] : ['tag'],
    additionalProperties: false,
  };
}

function withName(schema: JsonSchema, type: { name?: string; docs?: string }): JsonSchema {
  return { ...(type.name ? { title: type.name } : {}), ...(type.docs ? { description: type.docs } : {}), ...schema };
}

/** The schema of one WIT value type. */
export function typeSchema(type: WitType, direction: Direction): JsonSchema {
  const sub = (t: WitType) => typeSchema(t, direction);
  switch (type.kind) {
    case 'bool':
      return { type: 'boolean' };
    case 'f32':
    case 'f64':
      return { anyOf: [{ type: 'number' }, { enum: ['NaN', 'Infinity', '-Infinity'] }], description: `${type.kind}` };
    case 'char':
      return { type: 'string', minLength: 1, maxLength: 1, description: 'one Unicode character' };
    case 'string':
      return { type: 'string' };
    case 'list':
      return { type: 'array', items: sub(type.element) };
    case 'option':
      if (type.some.kind === 'option') return { oneOf: [taggedCase('none', undefined), taggedCase('some', sub(type.some))] };
      return { anyOf: [{ type: 'null' }, sub(type.some)] };
    case 'result':
      return {
        oneOf: [taggedCase('ok', type.ok ? sub(type.ok) : undefined), taggedCase('err', type.err ? sub(type.err) : undefined)],
      };
    case 'tuple':
      // No `items: false`: maxItems already bounds the length, and draft-07 validators (the MCP SDK's
      // Ajv) read `items: false` as "no items at all".
      return { type: 'array', prefixItems: type.items.map(sub), minItems: type.items.length, maxItems: type.items.length };
    case 'record':
      return withName(
        {
          type: 'object',
          properties: Object.fromEntries(type.fields.map((f) => [f.name, f.docs ? { description: f.docs, ...sub(f.type) } : sub(f.type)])),
          required: type.fields.map((f) => f.name),
          additionalProperties: false,
        },
        type,
      );
    case 'variant':
      return withName({ oneOf: type.cases.map((c) => taggedCase(c.name, c.type ? sub(c.type) : undefined)) }, type);
    case 'enum':
      return withName({ type: 'string', enum: [...type.cases] }, type);
    case 'flags':
      // `enum: []` is not a valid schema: flags without labels (which validation refuses anyway) take no items.
      return withName(type.flags.length === 0 ? { type: 'array', maxItems: 0 } : { type: 'array', items: { enum: [...type.flags] }, uniqueItems: true }, type);
    default: {
      if (!isInteger(type.kind)) throw new TypeError(`no schema for ${type.kind}`);
      const [min, max] = integerRange(type.kind);
      if (type.kind !== 's64' && type.kind !== 'u64') return { type: 'integer', minimum: Number(min), maximum: Number(max) };
      const decimal = { type: 'string', pattern: DECIMAL_PATTERN, description: `${type.kind} as a decimal string (${min} to ${max})` };
      if (direction === 'output') return decimal;
      const safe = { type: 'integer', minimum: type.kind === 'u64' ? 0 : Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER };
      return { anyOf: [safe, decimal] };
    }
  }
}

/** The parameters as one object schema (what `--args` and an MCP tool's arguments must be). */
export function parametersSchema(fn: Pick<TypedFunction, 'params' | 'docs'>): JsonSchema {
  return {
    $schema: SCHEMA_DIALECT,
    type: 'object',
    ...(fn.docs ? { description: fn.docs } : {}),
    properties: Object.fromEntries(fn.params.map((p) => [p.name, typeSchema(p.type, 'input')])),
    // An option parameter may be left out (none), unless it is an option of an option.
    required: fn.params.filter((p) => !(p.type.kind === 'option' && p.type.some.kind !== 'option')).map((p) => p.name),
    additionalProperties: false,
  };
}

/**
 * The result a call produces: a function returning `result<T, E>` ends `ok` with T or `error` with E,
 * so its result schema is T's; a function with no result produces null.
 */
export function resultSchema(fn: Pick<TypedFunction, 'result'>): JsonSchema {
  const value = successType(fn);
  return { $schema: SCHEMA_DIALECT, ...(value ? typeSchema(value, 'output') : { type: 'null' }) };
}

/** What a call's success carries: T of a top-level `result<T, E>`, else the result type. */
export function successType(fn: Pick<TypedFunction, 'result'>): WitType | undefined {
  return fn.result?.kind === 'result' ? fn.result.ok : fn.result;
}

/** What a call's failure carries: E of a top-level `result<T, E>`. */
export function failureType(fn: Pick<TypedFunction, 'result'>): WitType | undefined {
  return fn.result?.kind === 'result' ? fn.result.err : undefined;
}
