/**
 * Seeded fuzzing of the two parsers that face untrusted input: the component loader (inspect → admit →
 * prepare, through `host.load`) and the policy loader (`loadPolicyFile`, what `host.load` calls for a
 * policy path). Whatever the input, each must either accept it or refuse it with its own error type and
 * a message meant for a person: never a TypeError from deep inside, raw jco / wasm-tools / engine text,
 * a stack, or a hang. Mutants start from the real guests and policies, so that most of them get past
 * the first checks and reach the deeper parsers.
 *
 * Every mutant is built from (seed, iteration) alone, and a failure prints both with the recipe that
 * built it. ICE_FUZZ_SEED picks another seed, ICE_FUZZ_ITERATIONS how many mutants each suite tries.
 *
 * Bugs this fuzzer found are pinned by minimal reproducers under "Regressions" at the end of the file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decoderGeneration, renewableDecoder } from '../host/src/component/decoder.js';
import { LoadError, PolicyError, createHost, loadPolicyFile, type Host } from '../host/src/index.js';
import { tempDir, writePolicy } from './helpers.js';
import { CASES_DIR, ROOT, guestWasm, type Language } from './paths.js';

const SEED = envInteger('ICE_FUZZ_SEED', 0x1ce5eed);
const ITERATIONS = envInteger('ICE_FUZZ_ITERATIONS', 2000);

function envInteger(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${raw}`);
  return value;
}

// ---------------------------------------------------------------------------------------------------
// Randomness

/** mulberry32: tiny, fast, and the same sequence on every platform. */
class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Each (suite, iteration) gets its own stream, so one mutant can be rebuilt without the ones before it. */
  static for(suite: number, iteration: number): Rng {
    return new Rng(SEED ^ Math.imul(suite, 0x85ebca6b) ^ Math.imul(iteration + 1, 0x9e3779b1));
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from nothing');
    return items[this.below(items.length)]!;
  }

  /** Picks by weight: `[weight, item]` pairs. */
  weighted<T>(choices: readonly (readonly [number, T])[]): T {
    let roll = this.next() * choices.reduce((sum, [weight]) => sum + weight, 0);
    for (const [weight, item] of choices) {
      roll -= weight;
      if (roll < 0) return item;
    }
    return choices[choices.length - 1]![1];
  }

  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => this.below(256));
  }
}

// ---------------------------------------------------------------------------------------------------
// What an acceptable refusal looks like

/** The error as a reproducer needs it: its class, message and where it was thrown. */
function show(error: unknown): string {
  if (!(error instanceof Error)) return `a thrown ${typeof error}: ${String(error).slice(0, 300)}`;
  const frames = (error.stack ?? '').split('\n').filter((line) => line.trimStart().startsWith('at ')).slice(0, 3);
  return `${error.constructor.name}: ${error.message.slice(0, 500)}${frames.length > 0 ? ` {${frames.map((f) => f.trim()).join(' | ')}}` : ''}`;
}

/** Text that only gets into a message when something other than the author's sentence leaked into it. */
const LEAKS: readonly (readonly [RegExp, string])[] = [
  [/\n\s+at /, 'a stack frame'],
  [/\[object \w+\]/, 'an [object …] rendering'],
  [/Maximum call stack size exceeded/, "the engine's stack overflow message"],
  [/\bRuntimeError\b|panicked at|wasm trap/, 'a raw wasm trap or panic'],
];

/** What is wrong with a refusal message, or undefined. `undefined` is a leak unless the input said it. */
function messageProblem(message: string, maxLength: number, input = ''): string | undefined {
  if (message.trim() === '') return 'an empty message';
  if (message.length >= maxLength) return `a ${message.length}-character message (limit ${maxLength})`;
  for (const [pattern, what] of LEAKS) if (pattern.test(message)) return `${what} in the message: ${message.slice(0, 400)}`;
  if (/\bundefined\b/.test(message) && !input.includes('undefined')) return `"undefined" in the message: ${message.slice(0, 400)}`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// Component mutants

const ORIGIN = '<component bytes>';
const MAX_LOAD_ERROR_LENGTH = 2000;

/** One section of a component or core module binary: id byte, LEB128 size, payload. */
interface Section {
  readonly id: number;
  readonly start: number;
  readonly sizeAt: number;
  readonly payload: number;
  readonly end: number;
}

function readLeb(bytes: Uint8Array, at: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let i = 0; i < 5; i++) {
    const byte = bytes[at + i];
    if (byte === undefined) return undefined;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) return { value, next: at + i + 1 };
  }
  return undefined;
}

/** LEB128 of `value`, padded with continuation bytes to `width` (a valid but overlong encoding). */
function leb(value: number, width = 1): number[] {
  const out: number[] = [];
  do {
    out.push(value % 128);
    value = Math.floor(value / 128);
  } while (value > 0 || out.length < width);
  return out.map((byte, i) => (i < out.length - 1 ? byte | 0x80 : byte));
}

/** The sections between `from` and `to`, as far as they parse (a mutant may be cut anywhere). */
function sectionsIn(bytes: Uint8Array, from: number, to: number): Section[] {
  const out: Section[] = [];
  let at = from;
  while (at < to) {
    const size = readLeb(bytes, at + 1);
    if (!size || size.next + size.value > to) break;
    out.push({ id: bytes[at]!, start: at, sizeAt: at + 1, payload: size.next, end: size.next + size.value });
    at = size.next + size.value;
  }
  return out;
}

/** A component's own sections and those of the core modules it embeds (section 1). */
function allSections(bytes: Uint8Array): Section[] {
  const top = sectionsIn(bytes, 8, bytes.length);
  return [...top, ...top.filter((s) => s.id === 1).flatMap((s) => sectionsIn(bytes, s.payload + 8, s.end))];
}

function concat(...parts: (Uint8Array | readonly number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/** A slice to cut, copy or replace: most often a whole section, so the result stays well-formed around it. */
function pickSpan(rng: Rng, bytes: Uint8Array): { from: number; to: number; what: string } {
  const sections = allSections(bytes);
  if (sections.length > 0 && rng.chance(0.5)) {
    const s = rng.pick(sections);
    return { from: s.start, to: s.end, what: `section ${s.id}@${hex(s.start)}` };
  }
  const from = rng.below(bytes.length);
  const to = Math.min(bytes.length, from + rng.between(1, 256));
  return { from, to, what: `${hex(from)}..${hex(to)}` };
}

type ComponentMutation = (rng: Rng, bytes: Uint8Array, other: Uint8Array) => [Uint8Array, string];

const COMPONENT_MUTATIONS: readonly (readonly [number, ComponentMutation])[] = [
  [
    4,
    function flipBytes(rng, bytes) {
      const out = Uint8Array.from(bytes);
      const edits: string[] = [];
      for (let n = rng.between(1, 8); n > 0; n--) {
        const at = rng.below(out.length);
        out[at] = rng.chance(0.5) ? out[at]! ^ (1 << rng.below(8)) : rng.below(256);
        edits.push(`${hex(at)}=${hex(out[at]!)}`);
      }
      return [out, `set ${edits.join(',')}`];
    },
  ],
  [
    2,
    function randomRun(rng, bytes) {
      const at = rng.below(bytes.length);
      const run = rng.bytes(rng.between(1, 64));
      const out = Uint8Array.from(bytes);
      out.set(run.subarray(0, out.length - at), at);
      return [out, `random run at ${hex(at)}: ${Buffer.from(run).toString('hex')}`];
    },
  ],
  [
    2,
    function truncate(rng, bytes) {
      const at = rng.chance(0.2) ? rng.below(Math.min(bytes.length, 32)) : rng.below(bytes.length);
      return [bytes.slice(0, at), `truncate at ${hex(at)}`];
    },
  ],
  [
    2,
    function duplicateSlice(rng, bytes) {
      const span = pickSpan(rng, bytes);
      const at = rng.chance(0.5) ? span.to : rng.below(bytes.length + 1);
      return [concat(bytes.subarray(0, at), bytes.subarray(span.from, span.to), bytes.subarray(at)), `copy ${span.what} to ${hex(at)}`];
    },
  ],
  [
    2,
    function removeSlice(rng, bytes) {
      const span = pickSpan(rng, bytes);
      return [concat(bytes.subarray(0, span.from), bytes.subarray(span.to)), `remove ${span.what}`];
    },
  ],
  [
    3,
    function sectionLength(rng, bytes) {
      const sections = allSections(bytes);
      if (sections.length === 0) return [bytes, 'no section to corrupt'];
      const s = rng.pick(sections);
      const size = s.end - s.payload;
      const [encoding, what] = rng.pick<[number[], string]>([
        [leb(0), '0'],
        [leb(Math.max(0, size - 1)), 'size-1'],
        [leb(size + 1), 'size+1'],
        [leb(size + rng.between(2, 1 << 20)), 'past the end'],
        [leb(0xffffffff), '0xffffffff'],
        [leb(rng.below(2 ** 32)), 'random'],
        [leb(size, 5), 'same, 5-byte encoding'],
        [[...leb(size, 5).map((b) => b | 0x80), 0], '6-byte encoding'],
        [[0x80, 0x80, 0x80, 0x80, 0x80], 'unterminated'],
      ]);
      return [concat(bytes.subarray(0, s.sizeAt), encoding, bytes.subarray(s.payload)), `length of section ${s.id}@${hex(s.start)} (${size}) → ${what}`];
    },
  ],
  [
    1,
    function headerArea(rng, bytes) {
      const out = Uint8Array.from(bytes);
      if (out.length >= 8 && rng.chance(0.5)) {
        // version and layer: a core module, other versions, other layers
        const [version, layer] = rng.pick([[1, 0], [0x0c, 1], [0x0e, 1], [0x0d, 0], [0x0d, 2], [0x0d, 0x100], [0xffff, 0xffff]] as const);
        out.set([version & 0xff, version >> 8, layer & 0xff, layer >> 8], 4);
        return [out, `version ${hex(version)} layer ${hex(layer)}`];
      }
      const at = rng.below(Math.min(out.length, 16));
      out[at] = rng.below(256);
      return [out, `header byte ${hex(at)}=${hex(out[at]!)}`];
    },
  ],
  [
    2,
    function splice(rng, bytes, other) {
      // At section boundaries the halves are each well-formed, which gets the mix past the decoder.
      const cut = (b: Uint8Array): number => {
        const bounds = sectionsIn(b, 8, b.length).map((s) => s.start);
        return rng.chance(0.7) && bounds.length > 0 ? rng.pick(bounds) : rng.below(b.length);
      };
      const head = cut(bytes);
      const tail = cut(other);
      return [concat(bytes.subarray(0, head), other.subarray(tail)), `first ${hex(head)} bytes + other from ${hex(tail)}`];
    },
  ],
];

interface Source {
  readonly label: string;
  readonly bytes: Uint8Array;
}

function mutateComponent(rng: Rng, sources: readonly Source[]): { bytes: Uint8Array; recipe: string } {
  const source = rng.pick(sources);
  const other = rng.pick(sources);
  let bytes = source.bytes;
  const steps: string[] = [];
  for (let n = rng.between(1, 3); n > 0 && bytes.length > 0; n--) {
    const mutation = rng.weighted(COMPONENT_MUTATIONS);
    const [next, step] = mutation(rng, bytes, other.bytes);
    bytes = next;
    steps.push(`${mutation.name}(${step})`);
  }
  return { bytes, recipe: `${source.label}${steps.some((s) => s.startsWith('splice')) ? ` with ${other.label}` : ''}: ${steps.join('; ')}` };
}

/** Why `error` is not an acceptable refusal of component bytes, or undefined when it is. */
function loadRefusalProblem(error: unknown): string | undefined {
  // The policies here are all valid, so even a PolicyError would be a bug.
  if (!(error instanceof LoadError)) return `rejected with ${show(error)}`;
  if (error.origin !== ORIGIN) return `LoadError with origin ${JSON.stringify(error.origin)}`;
  // One sentence, naming the component; ungranted-import says one such sentence per import.
  const stray = error.message.split('\n').find((line) => !line.startsWith(`${ORIGIN} `));
  if (stray !== undefined) return `a line that does not start with "${ORIGIN}": ${JSON.stringify(stray.slice(0, 300))}`;
  return messageProblem(error.message, MAX_LOAD_ERROR_LENGTH);
}

// ---------------------------------------------------------------------------------------------------
// Policy mutants

const POLICY_KEYS = [
  'version', 'component', 'audit', 'capture', 'limits', 'grants', 'log', 'clock', 'random', 'kv', 'events',
  'levels', 'maxCalls', 'maxMessageBytes', 'maxBytes', 'read', 'write', 'maxValueBytes', 'maxKeyBytes', 'kinds', 'maxPayloadBytes',
];
/** Keys a JavaScript object treats specially, near-misses, and keys that are not strings. */
const ODD_KEYS = [
  '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '<<', '"kv"', "'log'", 'Kv', 'grant', 'kvv',
  '1', '-1', '~', 'null', 'true', '""', '"a.b"', '"a\\u0000b"', '"é"', '? [kv]\n ', '? { a: 1 }\n ',
];

function longString(rng: Rng): string {
  return rng.pick(['x', 'é', '*', 'ab/']).repeat(rng.pick([1000, 5000, 70000]));
}

/** A YAML value of any shape: the schema must refuse every wrong one by name. */
function randomValue(rng: Rng): string {
  return rng.pick<() => string>([
    () => rng.pick(['0', '-1', '1', '1.5', '-0', '1e400', '-1e400', '123456789012345678901234567890', '9007199254740993', '0x7fffffff', '0o777', '1_000', '1e3', '01', '4k']),
    () => rng.pick(['.inf', '-.inf', '.nan', '.NaN', 'NaN', 'Infinity', '"1"', "'64'", '"NaN"']),
    () => rng.pick(['deny', 'Deny', '"deny "', 'allow', '"*"', '"**"', '"a*b"', '""', "''", '"\\u0000"', '"\\ud800"', '"line\\nbreak"', 'é', '"../.."', 'counter']),
    () => rng.pick(['null', '~', '', 'Null', 'true', 'false', 'yes', 'on']),
    () => rng.pick(['[]', '[info]', '[1, 2]', '[[[]]]', '[deny]', '["*", "*"]', '[null]', '[{}]']),
    () => `[${Array.from({ length: rng.pick([100, 1001, 5000]) }, (_, i) => `"p${i}/*"`).join(', ')}]`,
    () => rng.pick(['{}', '{ a: 1 }', '{ maxCalls: 1 }', '{ kinds: ["*"] }', '{ read: ["*"] }', '{ : }', '{ ? }']),
    () => rng.pick(['!!str 1', '!!binary aGk=', '!!set { a }', '!!timestamp 2001-12-14', '!custom x', '!!int "12"', '!!float 1', '!<tag:x> y']),
    () => rng.pick(['&a x', '*a', '*nowhere', '&r [*r]', '&m { <<: *m }']),
    () => (rng.chance(0.5) ? `"${longString(rng)}"` : longString(rng)),
  ])();
}

/** Deep nesting, in flow and block style: the parsers and the duplicate-key walk recurse. */
function deepValue(rng: Rng): string {
  const depth = rng.pick([100, 1000, 4000, 10_000]);
  return rng.pick<() => string>([
    () => `${'['.repeat(depth)}${']'.repeat(depth)}`,
    () => `${'{a: '.repeat(depth)}1${'}'.repeat(depth)}`,
    () => `${'- '.repeat(depth)}x`,
    // Block style grows with the square of the depth.
    () => `\n${Array.from({ length: Math.min(depth, 200) }, (_, i) => `${' '.repeat(i + 1)}a:`).join('\n')} 1`,
  ])();
}

/** The classic exponential alias expansion: 9^9 strings from a few hundred bytes. */
const BILLION_LAUGHS = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  .concat(['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(',')}]`))
  .join('\n');

/**
 * Where a value starts and ends: after `key:` or as a flow-sequence item, up to the end of the scalar or
 * collection; and a key, plain or in JSON's quotes. Both only start right after a delimiter, so they stay
 * linear on a megabyte-long line or deep indentation.
 */
const VALUE = /(?<=:[ \t]{0,8}|[[,][ \t]{0,8})(\{[^{}\n]*\}|\[[^[\]\n]*\]|[^\s{}[\],#][^\n{}[\],#]*)/g;
const KEY = /(?<=^[ \t]{0,8}"?|[{,][ \t]{0,8}"?)[A-Za-z_][\w-]*(?="?[ \t]*:)/gm;

function spans(text: string, pattern: RegExp): { from: number; to: number }[] {
  return [...text.matchAll(pattern)].map((m) => ({ from: m.index, to: m.index + m[0].length }));
}

function replaceSpan(text: string, span: { from: number; to: number }, by: string): string {
  return text.slice(0, span.from) + by + text.slice(span.to);
}

/** Replaces one value (or, when there is none, appends a key) with `make()`. */
function replaceValue(rng: Rng, text: string, make: () => string): [string, string] {
  const values = spans(text, VALUE);
  const by = make();
  const label = by.length > 40 ? `${JSON.stringify(by.slice(0, 30))}… (${by.length} chars)` : JSON.stringify(by);
  if (values.length === 0) return [`${text}\nx: ${by}\n`, `append x: ${label}`];
  const span = rng.pick(values);
  return [replaceSpan(text, span, by), `${JSON.stringify(text.slice(span.from, span.to))}@${span.from} → ${label}`];
}

/** Characters that mean something to YAML or JSON, plus a few that should not appear in a policy at all. */
const POLICY_CHARS = [...' :-{}[],#&*!|>\'"%@`?\t\n\r\\0aZ9.~', 'é', '\u2028', '\ufeff', '\u0000', '\ud800', '😀'];

type PolicyMutation = (rng: Rng, text: string) => [string, string];

const POLICY_MUTATIONS: readonly (readonly [number, PolicyMutation])[] = [
  [
    4,
    function flipChars(rng, text) {
      const edits: string[] = [];
      for (let n = rng.between(1, 4); n > 0 && text.length > 0; n--) {
        const at = rng.below(text.length);
        const c = rng.pick(POLICY_CHARS);
        text = text.slice(0, at) + c + text.slice(at + 1);
        edits.push(`${at}=${JSON.stringify(c)}`);
      }
      return [text, edits.join(',')];
    },
  ],
  [
    2,
    function insertChars(rng, text) {
      const at = rng.below(text.length + 1);
      const chars = Array.from({ length: rng.between(1, 8) }, () => rng.pick(POLICY_CHARS)).join('');
      return [text.slice(0, at) + chars + text.slice(at), `${at}+${JSON.stringify(chars)}`];
    },
  ],
  [
    2,
    function deleteChars(rng, text) {
      const at = rng.below(text.length + 1);
      const n = rng.between(1, 20);
      return [text.slice(0, at) + text.slice(at + n), `${at}-${n}`];
    },
  ],
  [
    3,
    function renameKey(rng, text) {
      const keys = spans(text, KEY);
      if (keys.length === 0) return [text, 'no key'];
      const span = rng.pick(keys);
      const by = rng.chance(0.05) ? `k${'y'.repeat(rng.pick([1100, 70000]))}` : rng.pick(rng.chance(0.5) ? POLICY_KEYS : ODD_KEYS);
      return [replaceSpan(text, span, by), `${text.slice(span.from, span.to)}@${span.from} → ${by.slice(0, 20)}${by.length > 20 ? `… (${by.length})` : ''}`];
    },
  ],
  [
    4,
    function swapValue(rng, text) {
      return replaceValue(rng, text, () => randomValue(rng));
    },
  ],
  [
    0.5,
    function deepNesting(rng, text) {
      return replaceValue(rng, text, () => deepValue(rng));
    },
  ],
  [
    2,
    function duplicateLine(rng, text) {
      const lines = text.split('\n');
      const at = rng.below(lines.length);
      lines.splice(at, 0, lines[at]!);
      return [lines.join('\n'), `line ${at + 1}`];
    },
  ],
  [
    2,
    function anchorsAndAliases(rng, text) {
      const values = spans(text, VALUE);
      const choice = rng.below(3);
      if (choice === 0 && values.length >= 2) {
        // An anchor on one value, an alias to it in another (before it: an unresolved alias).
        const [a, b] = [rng.pick(values), rng.pick(values)];
        if (a.from === b.from) return [text, 'same value twice'];
        const [first, second] = a.from < b.from ? [a, b] : [b, a];
        const out = text.slice(0, first.from) + '&x ' + text.slice(first.from, second.from) + '*x' + text.slice(second.to);
        return [out, `&x@${first.from} *x@${second.from}`];
      }
      if (choice === 1) return [`${BILLION_LAUGHS}\n${replaceValue(rng, text, () => '*i')[0]}`, 'billion laughs, used as a value'];
      return [`${BILLION_LAUGHS}\n${text}`, 'billion laughs, unused'];
    },
  ],
  [
    1,
    function tabs(rng, text) {
      return rng.chance(0.5) ? [text.replace(/^ +/gm, '\t'), 'indent with tabs'] : [text.replace(/: /g, ':\t'), 'tab after colons'];
    },
  ],
  [
    1,
    function byteOrderMarks(rng, text) {
      const at = rng.chance(0.5) ? 0 : rng.below(text.length + 1);
      const marks = '\ufeff'.repeat(rng.between(1, 2));
      return [text.slice(0, at) + marks + text.slice(at), `${marks.length} BOM at ${at}`];
    },
  ],
  [
    1,
    function wholeDocument(rng, text) {
      const choice = rng.pick([
        '', ' ', '\n\n', '# only a comment\n', '---\n', '...\n', '---\n---\n', '\u0000', '{}', '[]', 'null', '~', '"text"', '- 1\n',
        `%YAML 1.1\n---\n${text}`, `%TAG ! tag:x,2000:\n---\n${text}`, `${text}\n---\n${text}`, text.replace(/\n/g, '\r\n'), text.replace(/\n/g, '\r'),
      ]);
      return [choice, JSON.stringify(choice.slice(0, 30))];
    },
  ],
  [
    0.2,
    function oversize(rng, text) {
      return [`${text}\n#${'x'.repeat(1024 * 1024 + rng.below(100))}\n`, 'padded past 1 MiB'];
    },
  ],
];

/** Byte sequences that are not UTF-8: the loader must refuse them rather than read U+FFFD. */
const INVALID_UTF8 = [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]];

interface PolicySeed {
  readonly label: string;
  readonly text: string;
  readonly extension: '.yaml' | '.json';
}

function mutatePolicy(rng: Rng, seeds: readonly PolicySeed[]): { bytes: Buffer; text: string; extension: string; recipe: string } {
  const seed = rng.pick(seeds);
  let text = seed.text;
  const steps: string[] = [];
  for (let n = rng.between(1, 3); n > 0; n--) {
    const mutation = rng.weighted(POLICY_MUTATIONS);
    const [next, step] = mutation(rng, text);
    text = next;
    steps.push(`${mutation.name}(${step})`);
  }
  let bytes = Buffer.from(text, 'utf8');
  if (rng.chance(0.05)) {
    const at = rng.below(bytes.length + 1);
    const bad = rng.pick(INVALID_UTF8);
    bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(bad), bytes.subarray(at)]);
    steps.push(`invalid UTF-8 ${Buffer.from(bad).toString('hex')} at byte ${at}`);
  } else if (rng.chance(0.01)) {
    bytes = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    steps.push('UTF-16LE');
  }
  // Without an extension the loader picks the format from the text.
  const extension = rng.chance(0.1) ? '' : seed.extension;
  return { bytes, text, extension, recipe: `${seed.label}${extension === seed.extension ? '' : ' (no extension)'}: ${steps.join('; ')}` };
}

const MAX_POLICY_ERROR_LENGTH = 10_000;

/** Why `error` is not an acceptable refusal of a policy, or undefined when it is. */
function policyRefusalProblem(error: unknown, text: string): string | undefined {
  if (!(error instanceof PolicyError)) return `threw ${show(error)}`;
  if (error.issues.length === 0) return 'a PolicyError with no issues';
  const bad = error.issues.find((issue) => typeof issue.path !== 'string' || typeof issue.message !== 'string' || issue.message.trim() === '');
  if (bad) return `an issue without a path and a message: ${JSON.stringify(bad)}`;
  if (!error.message.startsWith('policy ')) return `a message that does not name the policy: ${error.message.slice(0, 300)}`;
  return messageProblem(error.message, MAX_POLICY_ERROR_LENGTH, text);
}

// ---------------------------------------------------------------------------------------------------
// Regressions
//
// Found by this fuzzer and fixed; each has a minimal reproducer in an `it` at the end of the file.

/** 8 bytes of component header, then sections. */
const COMPONENT_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
const section = (id: number, payload: readonly number[]): number[] => [id, ...leb(payload.length), ...payload];

/**
 * jco's decoder reserved memory for the declared size of an item (a section, a function body) before
 * checking it against the input: 256 MiB declared in 15 bytes took half a second; from about 2 GiB it
 * panicked, and the panic left that decoder unusable for the rest of the process. A type section
 * declaring `size` bytes and holding one:
 */
const declaringSection = (size: number): Uint8Array => new Uint8Array([...COMPONENT_HEADER, 0x07, ...leb(size), 0x00]);

/** The same where the top-level sections are all whole: an embedded core module's one function body declares 4 GiB. */
const declaringFunctionBody = (): Uint8Array =>
  new Uint8Array([
    ...COMPONENT_HEADER,
    ...section(1, [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, ...section(1, [1, 0x60, 0, 0]), ...section(3, [1, 0]), ...section(10, [1, ...leb(0xffffffff)])]),
  ]);

// ---------------------------------------------------------------------------------------------------
// The suites

/** Generous per-suite budgets that grow with ICE_FUZZ_ITERATIONS. */
const timeout = (msPerMutant: number): number => Math.max(30_000, ITERATIONS * msPerMutant);

function summary(failures: readonly string[]): string {
  return `${failures.length} mutants were not handled cleanly (seed ${SEED}; rerun with ICE_FUZZ_SEED=${SEED}); the first 20`;
}

function tallies(): { add(key: string): void; toString(): string } {
  const counts = new Map<string, number>();
  return {
    add: (key) => void counts.set(key, (counts.get(key) ?? 0) + 1),
    toString: () => [...counts].sort().map(([key, n]) => `${key} ${n}`).join(', '),
  };
}

/** What `load` settled with: undefined when it resolved, else the rejection. */
const refusal = (load: Promise<unknown>): Promise<unknown> => load.then(() => undefined, (error: unknown) => error ?? new Error('rejected with nothing'));

describe(`fuzz (seed ${SEED}, ${ITERATIONS} mutants per suite; ICE_FUZZ_SEED / ICE_FUZZ_ITERATIONS to change)`, () => {
  const SOURCES: [string, Language][] = [['hello', 'assemblyscript'], ['counter', 'assemblyscript'], ['hello', 'rust'], ['counter', 'rust']];
  const policies = {
    none: writePolicy('version: 1\ncomponent: fuzz\ngrants: {}\n'),
    granted: writePolicy(
      'version: 1\ncomponent: fuzz\ngrants:\n  log: {}\n  clock: {}\n  random: {}\n  kv: { read: ["*"], write: ["*"] }\n  events: { kinds: ["*"] }\n',
    ),
    denied: writePolicy('version: 1\ncomponent: fuzz\ngrants:\n  log: deny\n  clock: deny\n  random: deny\n  kv: deny\n  events: deny\n'),
  };
  /** Hosts without a disk cache, so every new component goes through jco. */
  const newHost = (): Promise<Host> => createHost({ stateDir: tempDir('ice-fuzz-'), cacheDir: false });

  describe('component loader', () => {
    /**
     * A mutant that still decodes is transpiled by jco once admitted (100 ms or more), and a good part
     * of them decode (flips in data segments, names, immediates). So every mutant is loaded first under
     * a policy granting nothing, where admission refuses it before anything is compiled, and only this
     * many of those that got that far are loaded again under a policy that admits them.
     */
    const MAX_ADMITTED = 30;
    let host: Host;
    let sources: Source[];

    beforeAll(async () => {
      host = await newHost();
      sources = SOURCES.map(([name, language]) => ({ label: `${name} (${language})`, bytes: readFileSync(guestWasm(name, language)) }));
    });
    afterAll(() => host.close());

    it(
      'refuses every mutant of a real component with a LoadError naming it, or loads it',
      async () => {
        const failures: string[] = [];
        const outcomes = tallies();
        let admitted = 0;
        let slowest = { ms: 0, iteration: -1 };
        const started = performance.now();

        /** One load, checked; the rejection (undefined when it loaded) for the caller to go on from. */
        const attempt = async (bytes: Uint8Array, policy: string, stage: string, iteration: number, recipe: string): Promise<unknown> => {
          const t = performance.now();
          const error = await refusal(host.load(bytes, policy));
          const ms = performance.now() - t;
          if (ms > slowest.ms) slowest = { ms, iteration };
          outcomes.add(`${stage}: ${error === undefined ? 'loaded' : error instanceof LoadError ? error.code : 'other'}`);
          const problem = error === undefined ? undefined : loadRefusalProblem(error);
          if (problem) failures.push(`iteration ${iteration} (${stage}) [${recipe}]: ${problem}`);
          return error;
        };

        for (let i = 0; i < ITERATIONS; i++) {
          const rng = Rng.for(1, i);
          const { bytes, recipe } = mutateComponent(rng, sources);
          const error = await attempt(bytes, policies.none, 'grants nothing', i, recipe);
          if (error instanceof LoadError && error.code === 'ungranted-import' && admitted < MAX_ADMITTED) {
            admitted++;
            await attempt(bytes, rng.chance(0.5) ? policies.granted : policies.denied, 'admitted', i, recipe);
          }
        }

        console.info(
          `component fuzz: ${ITERATIONS} mutants, ${admitted} of them loaded again under an admitting policy, in ` +
            `${Math.round(performance.now() - started)} ms (slowest load ${Math.round(slowest.ms)} ms, iteration ${slowest.iteration}): ${outcomes}`,
        );
        expect(failures.slice(0, 20), summary(failures)).toEqual([]);
      },
      timeout(40),
    );

    it('still loads every original component afterwards, on a fresh host (no mutant left jco broken)', async () => {
      const fresh = await newHost();
      try {
        for (const [name, language] of SOURCES) {
          expect((await fresh.load(guestWasm(name, language), policies.granted)).imports).toContain('log');
        }
      } finally {
        fresh.close();
      }
    });
  });

  describe('policy loader', () => {
    const dir = tempDir('ice-fuzz-policy-');
    const seeds: PolicySeed[] = [];

    beforeAll(() => {
      const files = [
        ...readdirSync(CASES_DIR).map((c) => join(CASES_DIR, c, 'policy.yaml')),
        join(ROOT, 'examples', 'counter', 'policy.yaml'),
        // Every bound the hardening added (limits.maxAsks/maxLedgerBytes, kv quotas, wasi caps).
        ...readdirSync(join(ROOT, 'test', 'fixtures', 'policies')).map((f) => join(ROOT, 'test', 'fixtures', 'policies', f)),
      ];
      for (const file of files) {
        const text = readFileSync(file, 'utf8');
        const label = file.slice(ROOT.length);
        seeds.push({ label, text, extension: '.yaml' });
        // The same policy as JSON: the other parser, with its own duplicate-key scan.
        seeds.push({ label: `${label} as JSON`, text: JSON.stringify(parseYaml(text), null, 2), extension: '.json' });
      }
    });

    it(
      'refuses every mutant of a real policy with a PolicyError listing its issues, or compiles it',
      () => {
        const failures: string[] = [];
        const outcomes = tallies();
        let slowest = { ms: 0, iteration: -1 };
        const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).join();
        const started = performance.now();

        for (let i = 0; i < ITERATIONS; i++) {
          const mutant = mutatePolicy(Rng.for(2, i), seeds);
          const path = join(dir, `policy${mutant.extension}`);
          writeFileSync(path, mutant.bytes);
          const t = performance.now();
          let problem: string | undefined;
          try {
            loadPolicyFile(path);
            outcomes.add('compiled');
          } catch (error) {
            outcomes.add('refused');
            problem = policyRefusalProblem(error, mutant.text);
          }
          const ms = performance.now() - t;
          if (ms > slowest.ms) slowest = { ms, iteration: i };
          // Synchronous, so a real hang cannot be caught; but an alias bomb taking seconds can.
          if (ms > 2000) problem ??= `took ${Math.round(ms)} ms`;
          if (problem) {
            const input = mutant.text.length > 300 ? `${JSON.stringify(mutant.text.slice(0, 300))}… (${mutant.text.length} chars)` : JSON.stringify(mutant.text);
            failures.push(`iteration ${i} [${mutant.recipe}] input ${input}: ${problem}`);
          }
        }

        console.info(
          `policy fuzz: ${ITERATIONS} mutants in ${Math.round(performance.now() - started)} ms ` +
            `(slowest load ${Math.round(slowest.ms)} ms, iteration ${slowest.iteration}): ${outcomes}`,
        );
        expect(Object.getOwnPropertyNames(Object.prototype).join(), 'a mutant polluted Object.prototype').toBe(prototypeKeys);
        expect(failures.slice(0, 20), summary(failures)).toEqual([]);
      },
      timeout(15),
    );
  });

  /** The PolicyError loading `path` throws (failing the test if it throws anything else, or nothing). */
  function policyErrorOf(path: string): PolicyError {
    let error: unknown;
    try {
      loadPolicyFile(path);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PolicyError);
    return error as PolicyError;
  }

  describe('regressions found by this fuzzer', () => {
    let host: Host;
    beforeAll(async () => {
      host = await newHost();
    });
    afterAll(() => host.close());

    it('a control character in a component-name entry is a name like any other (was: a raw SyntaxError)', async () => {
      const bytes = Uint8Array.from(readFileSync(guestWasm('hello')));
      // The name hello's component-name section gives the type of its log import.
      const at = Buffer.from(bytes).lastIndexOf('ty-ice:agent/log@0.1.0');
      expect(at).toBeGreaterThan(0);
      bytes[at + 'ty-ice:agent'.length] = 0x08;
      const error = await refusal(host.load(bytes, policies.granted));
      expect(error === undefined ? undefined : loadRefusalProblem(error)).toBeUndefined();
    });

    it('YAML nested 10000 deep is refused as nested too deeply (was: the engine\'s stack overflow text)', () => {
      const error = policyErrorOf(writePolicy(`version: 1\ncomponent: deep\ngrants: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`));
      const messages = error.issues.map((issue) => issue.message);
      expect(messages.filter((m) => m.includes('Maximum call stack'))).toEqual([]);
      expect(messages.some((m) => m.includes('nested too deeply'))).toBe(true);
    });

    it('an unknown key of 70 000 characters is cut in the message (was: a 70 000-character message)', () => {
      const error = policyErrorOf(writePolicy(JSON.stringify({ version: 1, component: 'long', grants: {}, ['k'.repeat(70_000)]: 1 }), 'policy.json'));
      expect(error.message.length).toBeLessThan(2000);
    });

    it('15 bytes declaring a 256 MiB section are refused at once (was: jco allocating 256 MiB)', async () => {
      // jco loaded and warm, so that only the refusal is timed.
      await host.load(guestWasm('counter'), policies.granted);
      const started = performance.now();
      const error = await refusal(host.load(declaringSection(256 * 1024 * 1024), policies.granted));
      expect(loadRefusalProblem(error)).toBeUndefined();
      expect(performance.now() - started, 'refusing 15 bytes should not take the time to allocate 256 MiB').toBeLessThan(100);
    });

    it('a section or function body declaring 4 GiB is refused before jco sees it (was: a jco panic)', async () => {
      for (const bytes of [declaringSection(0xffffffff), declaringFunctionBody()]) {
        const error = await refusal(host.load(bytes, policies.granted));
        expect(loadRefusalProblem(error)).toBeUndefined();
        expect((error as LoadError).message).toMatch(/declares 4294967295 bytes, but only \d+ follow/);
      }
      await expect(host.load(guestWasm('hello'), policies.granted)).resolves.toBeDefined();
    });

    it('a decoder that panicked is replaced, so later components still load (was: every later load refused)', async () => {
      const before = decoderGeneration();
      // Straight to the decoder, past the framing check that now keeps this input from it.
      await expect(renewableDecoder.componentWit(declaringFunctionBody())).rejects.toBeInstanceOf(WebAssembly.RuntimeError);
      expect(decoderGeneration()).toBe(before + 1);
      const fresh = await newHost();
      try {
        await expect(fresh.load(guestWasm('counter', 'rust'), policies.granted)).resolves.toBeDefined();
      } finally {
        fresh.close();
      }
    });
  });
});
