/**
 * The JSON mapping of WIT values (component/json-values.ts) and its JSON Schema (json-schema.ts), as
 * properties over generated types and values (fast-check): every supported type round-trips between
 * jco's representation and JSON text, whatever JSON we produce validates against the schema we
 * publish (checked by Ajv's 2020-12 validator), and whatever the converter accepts the schema accepts.
 * The calls through real components are in calls.test.ts.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArgumentError, argumentsFromJson, fromJson, jsName, OutputTooLarge, toJson } from '../host/src/component/json-values.js';
import { parametersSchema, typeSchema } from '../host/src/component/json-schema.js';
import type { IntegerKind, TypedFunction, WitType } from '../host/src/component/wit-types.js';

const ajv = new Ajv2020({ strict: true, allowUnionTypes: true });
const validator = (schema: object) => ajv.compile(schema);

const RANGES: Record<IntegerKind, [bigint, bigint]> = {
  s8: [-128n, 127n],
  u8: [0n, 255n],
  s16: [-32768n, 32767n],
  u16: [0n, 65535n],
  s32: [-(2n ** 31n), 2n ** 31n - 1n],
  u32: [0n, 2n ** 32n - 1n],
  s64: [-(2n ** 63n), 2n ** 63n - 1n],
  u64: [0n, 2n ** 64n - 1n],
};
const TYPED: Record<string, { from(items: unknown[]): unknown }> = {
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

const witName = fc.stringMatching(/^[a-z][a-z0-9]{0,5}(-[a-z][a-z0-9]{0,3}){0,2}$/);
const names = (min: number) => fc.uniqueArray(witName, { minLength: min, maxLength: 4, selector: jsName });
const primitive: fc.Arbitrary<WitType> = fc.constantFrom<WitType>(
  ...(['bool', 's8', 'u8', 's16', 'u16', 's32', 'u32', 's64', 'u64', 'f32', 'f64', 'char', 'string'] as const).map((kind) => ({ kind }) as WitType),
);

const { type: witType } = fc.letrec<{ type: WitType }>((tie) => ({
  type: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    primitive,
    tie('type').map((element): WitType => ({ kind: 'list', element })),
    tie('type').map((some): WitType => ({ kind: 'option', some })),
    fc.record({ ok: fc.option(tie('type'), { nil: undefined }), err: fc.option(tie('type'), { nil: undefined }) }).map(
      ({ ok, err }): WitType => ({ kind: 'result', ...(ok ? { ok } : {}), ...(err ? { err } : {}) }),
    ),
    fc.array(tie('type'), { minLength: 1, maxLength: 3 }).map((items): WitType => ({ kind: 'tuple', items })),
    names(1).chain((fields) =>
      fc.tuple(...fields.map(() => tie('type'))).map((types): WitType => ({ kind: 'record', name: 'rec', fields: fields.map((name, i) => ({ name, type: types[i]! })) })),
    ),
    names(1).chain((cases) =>
      fc
        .tuple(...cases.map(() => fc.option(tie('type'), { nil: undefined })))
        .map((types): WitType => ({ kind: 'variant', cases: cases.map((name, i) => ({ name, ...(types[i] ? { type: types[i] } : {}) })) })),
    ),
    names(1).map((cases): WitType => ({ kind: 'enum', cases })),
    names(0).map((flags): WitType => ({ kind: 'flags', flags })),
  ),
}));

/** A value of `type` as jco's bindings represent it. */
function jcoValue(type: WitType): fc.Arbitrary<unknown> {
  switch (type.kind) {
    case 'bool':
      return fc.boolean();
    case 'f32':
      // JSON has no -0: it comes back as 0 (documented in json-values.ts).
      return fc.float().map((x) => (Object.is(x, -0) ? 0 : x));
    case 'f64':
      return fc.double().map((x) => (Object.is(x, -0) ? 0 : x));
    case 'char':
      return fc
        .integer({ min: 0, max: 0x10ffff })
        .filter((cp) => cp < 0xd800 || cp > 0xdfff)
        .map((cp) => String.fromCodePoint(cp));
    case 'string':
      return fc.string({ unit: 'binary', maxLength: 12 });
    case 'list': {
      const items = fc.array(jcoValue(type.element), { maxLength: 4 });
      const typed = TYPED[type.element.kind];
      return typed ? items.map((xs) => typed.from(xs)) : items;
    }
    case 'option':
      if (type.some.kind === 'option') return fc.oneof(fc.constant({ tag: 'none' }), jcoValue(type.some).map((val) => ({ tag: 'some', val })));
      return fc.option(jcoValue(type.some), { nil: undefined });
    case 'result':
      return fc.oneof(
        (type.ok ? jcoValue(type.ok) : fc.constant(undefined)).map((val) => ({ tag: 'ok', val })),
        (type.err ? jcoValue(type.err) : fc.constant(undefined)).map((val) => ({ tag: 'err', val })),
      );
    case 'tuple':
      return fc.tuple(...type.items.map(jcoValue));
    case 'record':
      return fc.tuple(...type.fields.map((f) => jcoValue(f.type))).map((values) => Object.fromEntries(type.fields.map((f, i) => [jsName(f.name), values[i]])));
    case 'variant':
      return fc.oneof(...type.cases.map((c) => (c.type ? jcoValue(c.type).map((val) => ({ tag: c.name, val })) : fc.constant({ tag: c.name }))));
    case 'enum':
      return fc.constantFrom(...type.cases);
    case 'flags':
      return fc.tuple(...type.flags.map(() => fc.boolean())).map((set) => Object.fromEntries(type.flags.map((f, i) => [jsName(f), set[i]])));
    default: {
      const [min, max] = RANGES[type.kind];
      return type.kind === 's64' || type.kind === 'u64' ? fc.bigInt({ min, max }) : fc.integer({ min: Number(min), max: Number(max) });
    }
  }
}

const typeAndValue = witType.chain((type) => jcoValue(type).map((value) => ({ type, value })));

describe('WIT values as JSON (property tests)', () => {
  it('every supported type round-trips: jco value → JSON text → jco value', () => {
    fc.assert(
      fc.property(typeAndValue, ({ type, value }) => {
        const text = JSON.stringify(toJson(type, value));
        expect(fromJson(type, JSON.parse(text), 'x')).toEqual(value);
      }),
      { numRuns: 600 },
    );
  });

  it('JSON → jco value → JSON is the identity on what the converter accepts', () => {
    fc.assert(
      fc.property(typeAndValue, ({ type, value }) => {
        const json = JSON.parse(JSON.stringify(toJson(type, value)));
        expect(toJson(type, fromJson(type, json, 'x'))).toEqual(json);
      }),
      { numRuns: 300 },
    );
  });

  it('the output bound is a lower bound: a result of exactly N bytes of JSON converts under a limit of N, not N-1', () => {
    fc.assert(
      fc.property(typeAndValue, ({ type, value }) => {
        const bytes = Buffer.byteLength(JSON.stringify(toJson(type, value)), 'utf8');
        expect(() => toJson(type, value, bytes)).not.toThrow();
        if (bytes > 64) expect(() => toJson(type, value, bytes * 20)).not.toThrow();
      }),
      { numRuns: 400 },
    );
    // Found by this property in CI: a record of four fields charged each field's separator twice.
    const record: WitType = {
      kind: 'option',
      some: { kind: 'record', name: 'rec', fields: [{ name: 'w2-x', type: { kind: 's64' } }, { name: 'g660eh-a-h2', type: { kind: 'bool' } }, { name: 'd', type: { kind: 'option', some: { kind: 'bool' } } }, { name: 'c-fe-n', type: { kind: 'string' } }] },
    };
    const exact = { w2X: 0n, g660ehAH2: false, d: undefined, cFeN: '' };
    expect(JSON.stringify(toJson(record, exact))).toHaveLength(53);
    expect(() => toJson(record, exact, 53)).not.toThrow();
    const list: WitType = { kind: 'list', element: { kind: 'u8' } };
    expect(() => toJson(list, new Uint8Array(1_000_000), 1024)).toThrow(OutputTooLarge);
  });

  it('what it produces validates against the published output and input schemas (Ajv 2020-12)', () => {
    fc.assert(
      fc.property(typeAndValue, ({ type, value }) => {
        const json = JSON.parse(JSON.stringify(toJson(type, value)));
        const output = validator(typeSchema(type, 'output'));
        const input = validator(typeSchema(type, 'input'));
        expect(output(json), JSON.stringify(output.errors)).toBe(true);
        expect(input(json), JSON.stringify(input.errors)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('whatever JSON the converter accepts, the input schema accepts too', () => {
    const candidate = fc.oneof(fc.jsonValue({ maxDepth: 3 }), typeAndValue.map(({ type, value }) => JSON.parse(JSON.stringify(toJson(type, value)))));
    fc.assert(
      fc.property(witType, candidate, (type, json) => {
        let accepted = true;
        try {
          fromJson(type, json, 'x');
        } catch (error) {
          if (!(error instanceof ArgumentError)) throw error;
          accepted = false;
        }
        if (accepted) expect(validator(typeSchema(type, 'input'))(json)).toBe(true);
      }),
      { numRuns: 400 },
    );
  });
});

describe('WIT values as JSON: refusals name the path of the first bad value', () => {
  const point: WitType = { kind: 'record', name: 'point', fields: [{ name: 'x', type: { kind: 'f64' } }, { name: 'y', type: { kind: 'f64' } }] };
  const centroid: TypedFunction = { name: 'geometry.centroid', func: 'centroid', params: [{ name: 'points', type: { kind: 'list', element: point } }] };
  const refusal = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(ArgumentError);
      return error as ArgumentError;
    }
    throw new Error('expected an ArgumentError');
  };

  it('a wrong type deep in a list of records', () => {
    const error = refusal(() => argumentsFromJson(centroid, { points: [{ x: 1, y: 2 }, { x: 1, y: 2 }, { x: 'one', y: 2 }] }));
    expect(error.path).toBe('points[2].x');
    expect(error.message).toBe('points[2].x: expected a number (f64) or "NaN", "Infinity", "-Infinity", got the string "one"');
  });

  it('a missing or an unknown record field, an unknown or a missing parameter', () => {
    expect(refusal(() => argumentsFromJson(centroid, { points: [{ x: 1 }] })).path).toBe('points[0].y');
    expect(refusal(() => argumentsFromJson(centroid, { points: [{ x: 1, y: 2, z: 3 }] })).message).toContain('point has no field "z"');
    expect(refusal(() => argumentsFromJson(centroid, { points: [], extra: 1 })).message).toContain('geometry.centroid has no parameter "extra" (parameters: points)');
    expect(refusal(() => argumentsFromJson(centroid, {})).path).toBe('points');
    expect(refusal(() => argumentsFromJson(centroid, [1])).message).toContain('expected a JSON object keyed by parameter name');
  });

  it('integers out of range, not whole, or 64-bit ones past the JSON-safe range', () => {
    expect(refusal(() => fromJson({ kind: 'u8' }, 256, 'n')).message).toBe('n: 256 is out of range for u8 (0 to 255)');
    expect(refusal(() => fromJson({ kind: 's32' }, 1.5, 'n')).message).toContain('expected an integer (s32)');
    expect(refusal(() => fromJson({ kind: 'u64' }, 2 ** 60, 'n')).message).toContain('pass u64 values that large as a decimal string');
    expect(refusal(() => fromJson({ kind: 'u64' }, '18446744073709551616', 'n')).message).toContain('out of range for u64');
    expect(refusal(() => fromJson({ kind: 's64' }, '01', 'n')).message).toContain('expected a decimal string or an integer (s64)');
    expect(fromJson({ kind: 'u64' }, '18446744073709551615', 'n')).toBe(2n ** 64n - 1n);
    expect(fromJson({ kind: 's64' }, -5, 'n')).toBe(-5n);
  });

  it('characters and strings that are not Unicode scalar values', () => {
    expect(refusal(() => fromJson({ kind: 'char' }, 'ab', 'c')).message).toContain('expected exactly one character');
    expect(refusal(() => fromJson({ kind: 'char' }, '\ud800', 'c')).message).toContain('lone surrogate');
    expect(refusal(() => fromJson({ kind: 'string' }, 'a\udc00b', 's')).message).toContain('lone surrogate');
    expect(fromJson({ kind: 'char' }, '😀', 'c')).toBe('😀');
  });

  it('tagged values: unknown tags, a missing or an unexpected val, extra keys', () => {
    const shape: WitType = { kind: 'variant', name: 'shape', cases: [{ name: 'circle', type: { kind: 'f64' } }, { name: 'empty' }] };
    expect(refusal(() => fromJson(shape, { tag: 'square' }, 's')).path).toBe('s.tag');
    expect(refusal(() => fromJson(shape, { tag: 'circle' }, 's')).path).toBe('s.val');
    expect(refusal(() => fromJson(shape, { tag: 'empty', val: 1 }, 's')).message).toContain('this case carries no value');
    expect(refusal(() => fromJson(shape, { tag: 'empty', colour: 1 }, 's')).message).toContain('unexpected key "colour"');
    expect(fromJson(shape, { tag: 'circle', val: 2 }, 's')).toEqual({ tag: 'circle', val: 2 });
  });

  it('flags listed twice or unknown, enum cases, tuples of the wrong length', () => {
    const style: WitType = { kind: 'flags', flags: ['bold', 'is-set'] };
    expect(fromJson(style, ['is-set'], 'f')).toEqual({ bold: false, isSet: true });
    expect(refusal(() => fromJson(style, ['bold', 'bold'], 'f')).message).toContain('listed twice');
    expect(refusal(() => fromJson(style, ['italic'], 'f')).path).toBe('f[0]');
    expect(refusal(() => fromJson({ kind: 'enum', cases: ['metric'] }, 'imperial', 'u')).message).toContain('expected one of "metric"');
    expect(refusal(() => fromJson({ kind: 'tuple', items: [{ kind: 'u8' }, { kind: 'u8' }] }, [1], 't')).message).toContain('expected an array of 2 items');
  });

  it('an option parameter may be left out; an option of an option is tagged', () => {
    const greet: TypedFunction = { name: 'greet', func: 'greet', params: [{ name: 'name', type: { kind: 'string' } }, { name: 'excited', type: { kind: 'option', some: { kind: 'bool' } } }] };
    expect(argumentsFromJson(greet, { name: 'a' })).toEqual(['a', undefined]);
    expect(argumentsFromJson(greet, { name: 'a', excited: null })).toEqual(['a', undefined]);
    expect(parametersSchema(greet)['required']).toEqual(['name']);
    const nested: WitType = { kind: 'option', some: { kind: 'option', some: { kind: 'u8' } } };
    expect(fromJson(nested, { tag: 'some', val: null }, 'o')).toEqual({ tag: 'some', val: undefined });
    expect(toJson(nested, { tag: 'none' })).toEqual({ tag: 'none' });
  });

  it('schemas: exact integer bounds, records closed and fully required, 64-bit as decimal strings on output', () => {
    expect(typeSchema({ kind: 's16' }, 'input')).toEqual({ type: 'integer', minimum: -32768, maximum: 32767 });
    expect(typeSchema(point, 'input')).toMatchObject({ type: 'object', required: ['x', 'y'], additionalProperties: false, title: 'point' });
    expect(typeSchema({ kind: 'u64' }, 'output')).toMatchObject({ type: 'string', pattern: '^-?(0|[1-9][0-9]*)$' });
    expect(validator(typeSchema({ kind: 'u64' }, 'input'))(2 ** 53)).toBe(false);
    expect(parametersSchema(centroid)['$schema']).toBe('https://json-schema.org/draft/2020-12/schema');
  });
});
