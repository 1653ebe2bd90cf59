import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compilePolicy, loadPolicyFile, parsePolicyText, type IcePolicy as CompiledPolicy } from '../host/src/capabilities/policy.js';
import type { EventsGrant } from '../host/src/capabilities/events/index.js';
import type { KvGrant } from '../host/src/capabilities/kv/index.js';
import type { LogGrant } from '../host/src/capabilities/log/index.js';
import { DEFAULT_MAX_CALLS, PolicyError, firstMatch, policyKeyFor } from '../host/src/policy/index.js';

const HEADER = 'version: 1\ncomponent: counter\n';

/** The PolicyError a load throws (fails the test if it does not throw one). */
function policyError(load: () => unknown): PolicyError {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(PolicyError);
    return error as PolicyError;
  }
  throw new Error('expected a PolicyError, but the policy loaded');
}

/** The issues of a YAML policy, as "path: message" lines. */
function yamlIssues(text: string): string[] {
  return policyError(() => parsePolicyText(text, 'policy.yaml')).issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message));
}

function grantsIssues(grantsYaml: string): string[] {
  return yamlIssues(`${HEADER}grants:\n${grantsYaml}`);
}

const SIZE_1G = 'must be an integer from 1 to 1000000000';

describe('policy: hostile and malformed input is refused with a message naming the path and the fix', () => {
  it('formats the whole error as "policy <source> is invalid:" then one indented line per issue', () => {
    const error = policyError(() =>
      parsePolicyText(`${HEADER}grants:\n  kvv: {}\n  kv: { read: ["count", "his*tory"] }\n`, 'examples/counter/policy.yaml'),
    );
    expect(error.source).toBe('examples/counter/policy.yaml');
    expect(error.message).toBe(
      'policy examples/counter/policy.yaml is invalid:\n' +
        '  grants.kv.read[1]: bad pattern "his*tory": "*" may only end a pattern (e.g. "history/*")\n' +
        '  grants.kvv: unknown key; allowed keys: log, clock, random, kv, events, http, model, wasi',
    );
    expect(error.issues).toEqual([
      { path: 'grants.kv.read[1]', message: 'bad pattern "his*tory": "*" may only end a pattern (e.g. "history/*")' },
      { path: 'grants.kvv', message: 'unknown key; allowed keys: log, clock, random, kv, events, http, model, wasi' },
    ]);
    expect(error.name).toBe('PolicyError');
  });

  describe('unknown keys at every level', () => {
    it('rejects an unknown top-level key', () => {
      expect(yamlIssues(`${HEADER}grants: {}\ngrant: {}\n`)).toEqual([
        'grant: unknown key; allowed keys: version, component, sha256, audit, limits, grants',
      ]);
    });
    it('rejects an unknown key in audit', () => {
      expect(yamlIssues(`${HEADER}audit: { capture: full, redact: true }\ngrants: {}\n`)).toEqual([
        'audit.redact: unknown key; allowed keys: capture, maxCaptureBytes',
      ]);
    });
    it('rejects an unknown interface in grants', () => {
      expect(grantsIssues('  net: {}\n')).toEqual(['grants.net: unknown key; allowed keys: log, clock, random, kv, events, http, model, wasi']);
    });
    it.each([
      ['log', '{ level: [info] }', 'grants.log.level: unknown key; allowed keys: levels, maxCalls, maxMessageBytes'],
      ['clock', '{ resolution: 1 }', 'grants.clock.resolution: unknown key; allowed keys: maxCalls'],
      ['random', '{ max: 1 }', 'grants.random.max: unknown key; allowed keys: maxCalls, maxBytes'],
      ['kv', '{ reads: [a] }', 'grants.kv.reads: unknown key; allowed keys: maxCalls, read, write, maxValueBytes, maxKeyBytes, ask, askTimeoutMs, maxKeys, maxTotalBytes'],
      ['events', '{ kinds: [a], kind: [b] }', 'grants.events.kind: unknown key; allowed keys: maxCalls, kinds, receive, maxPayloadBytes'],
    ])('rejects an unknown key inside grants.%s', (name, body, expected) => {
      expect(grantsIssues(`  ${name}: ${body}\n`)).toEqual([expected]);
    });
    it('lists each unknown key on its own line', () => {
      expect(grantsIssues('  clock: { a: 1, b: 2 }\n')).toEqual([
        'grants.clock.a: unknown key; allowed keys: maxCalls',
        'grants.clock.b: unknown key; allowed keys: maxCalls',
      ]);
    });
    it('treats __proto__ as an unknown key, in YAML and in JSON', () => {
      expect(yamlIssues(`${HEADER}grants: {}\n__proto__: { grants: { kv: {} } }\n`)).toEqual([
        '__proto__: unknown key; allowed keys: version, component, sha256, audit, limits, grants',
      ]);
      const error = policyError(() =>
        parsePolicyText('{"version":1,"component":"c","grants":{},"__proto__":{"x":1}}', 'p.json'),
      );
      expect(error.issues).toEqual([{ path: '__proto__', message: 'unknown key; allowed keys: version, component, sha256, audit, limits, grants' }]);
    });
  });

  describe('version, component, audit, grants', () => {
    it('rejects another version with a clear message', () => {
      expect(yamlIssues('version: 2\ncomponent: counter\ngrants: {}\n')).toEqual([
        'version: unsupported policy version 2; this host reads version 1',
      ]);
      expect(yamlIssues('version: "1"\ncomponent: counter\ngrants: {}\n')).toEqual([
        'version: expected a number, got the string "1": write "version: 1" without quotes',
      ]);
    });
    it('reports every missing required key with what to add', () => {
      expect(yamlIssues('audit: { capture: full }\n')).toEqual([
        'version: missing; add "version: 1"',
        'component: missing; add "component: <name>" (the component\'s name in the ledger, also its kv namespace)',
        'grants: missing; add "grants:" with the capabilities this component may use ("grants: {}" grants nothing)',
      ]);
    });
    it.each(['Counter', '-counter', 'a b', 'a/b', '', 'x'.repeat(65), 'cöunter'])('rejects the component name %j', (name) => {
      expect(yamlIssues(`version: 1\ncomponent: ${JSON.stringify(name)}\ngrants: {}\n`)).toEqual([
        `component: bad component name ${JSON.stringify(name).length > 60 ? JSON.stringify(name).slice(0, 56) + '…"' : JSON.stringify(name)}: use 1 to 64 characters from a-z, 0-9, ".", "_", "-", starting with a letter or digit`,
      ]);
    });
    it('accepts component names at the edges of the rule', () => {
      for (const name of ['a', '0', 'my-agent_v1.2', 'x'.repeat(64)]) {
        expect(parsePolicyText(`version: 1\ncomponent: "${name}"\ngrants: {}\n`, 'p.yaml').component).toBe(name);
      }
    });
    it('rejects a component name that is not a string', () => {
      expect(yamlIssues('version: 1\ncomponent: 5\ngrants: {}\n')).toEqual([
        'component: expected the component name as a string, got 5',
      ]);
    });
    it('rejects a bad audit section and capture mode', () => {
      expect(yamlIssues(`${HEADER}audit: full\ngrants: {}\n`)).toEqual(['audit: expected a mapping like { capture: full }, got "full"']);
      expect(yamlIssues(`${HEADER}audit: { capture: partial }\ngrants: {}\n`)).toEqual([
        'audit.capture: expected full or digest, got "partial"',
      ]);
    });
    it('rejects grants that are not a mapping', () => {
      expect(yamlIssues(`${HEADER}grants: [kv]\n`)).toEqual([
        'grants: expected a mapping of capabilities (log, clock, random, kv, events, http, model, wasi), got a list',
      ]);
      expect(yamlIssues(`${HEADER}grants:\n`)).toEqual([
        'grants: expected a mapping of capabilities (log, clock, random, kv, events, http, model, wasi), got an empty value',
      ]);
    });
    it('rejects a document that is not a mapping', () => {
      expect(yamlIssues('- version: 1\n')).toEqual(['expected a mapping with keys version, component, sha256, audit, limits, grants, got a list']);
      expect(yamlIssues('hello\n')).toEqual(['expected a mapping with keys version, component, sha256, audit, limits, grants, got "hello"']);
      expect(policyError(() => compilePolicy(null)).message).toBe(
        'policy <inline> is invalid:\n  expected a mapping with keys version, component, sha256, audit, limits, grants, got an empty value',
      );
    });
  });

  describe('limits', () => {
    const limits = (yaml: string) => yamlIssues(`${HEADER}limits: ${yaml}\ngrants: {}\n`);
    it('refuses limits out of range or of the wrong type, naming the bound and the unit', () => {
      expect(limits('{ fuel: 0 }')).toEqual(['limits.fuel: must be an integer from 1 to 1000000000000000, got 0']);
      expect(limits('{ timeoutMs: 1.5 }')).toEqual(['limits.timeoutMs: must be an integer from 1 to 3600000 (ms), got 1.5']);
      expect(limits('{ memoryMiB: 5000 }')).toEqual(['limits.memoryMiB: must be an integer from 1 to 4096 (MiB), got 5000']);
      expect(limits('{ memoryMiB: "64" }')).toEqual(['limits.memoryMiB: must be an integer from 1 to 4096 (MiB), got "64"']);
      expect(limits('{ maxOutputBytes: 100000000 }')).toEqual([
        'limits.maxOutputBytes: must be an integer from 1 to 67108864 (64 MiB), got 100000000',
      ]);
    });
    it('refuses an unknown limit and a limits value that is not a mapping', () => {
      expect(limits('{ cpu: 1 }')).toEqual(['limits.cpu: unknown key; allowed keys: fuel, timeoutMs, memoryMiB, maxOutputBytes, maxLedgerBytes, maxAsks']);
      expect(limits('5')).toEqual(['limits: expected a mapping like { fuel: 1000000000, timeoutMs: 10000, memoryMiB: 64 }, got 5']);
    });
    it('fills the host defaults for limits left out, and keeps those given', () => {
      const policy = parsePolicyText(`${HEADER}limits: { timeoutMs: 500 }\ngrants: {}\n`, 'policy.yaml');
      expect(policy.limits).toEqual({ fuel: 1_000_000_000, timeoutMs: 500, memoryMiB: 64, maxOutputBytes: 1024 * 1024, maxLedgerBytes: 256 * 1024 * 1024, maxAsks: 20 });
      expect(policy.document.limits).toEqual(policy.limits);
    });
  });

  describe('interface slots: settings or "deny"', () => {
    it('rejects "allow" (or any string but deny) with the fix', () => {
      expect(grantsIssues('  kv: allow\n')).toEqual([
        'grants.kv: expected settings like kv: { read: ["count"], write: ["count"] }, or "deny" to deny every call; got "allow"',
      ]);
      expect(grantsIssues('  clock: true\n')).toEqual([
        'grants.clock: expected settings like clock: {}, or "deny" to deny every call; got true',
      ]);
      expect(grantsIssues('  log: Deny\n')).toEqual([
        'grants.log: expected settings like log: { levels: [info, warn, error] }, or "deny" to deny every call; got "Deny"',
      ]);
    });
    it('rejects an empty value and a list', () => {
      expect(grantsIssues('  random:\n')).toEqual([
        'grants.random: expected settings like random: { maxBytes: 4096 }, or "deny" to deny every call; got an empty value',
      ]);
      expect(grantsIssues('  events: [counter.*]\n')).toEqual([
        'grants.events: expected settings like events: { kinds: ["counter.*"] }, or "deny" to deny every call; got a list',
      ]);
    });
    it('requires kinds or receive when events is granted: `events: {}` says to list them or deny', () => {
      expect(grantsIssues('  events: {}\n')).toEqual([
        'grants.events.kinds: missing; list the event kinds this component may emit, e.g. kinds: ["counter.*"], and/or those it may receive, e.g. receive: ["notes.*"]; or set "events: deny"',
      ]);
      expect(grantsIssues('  events: { receive: notes.* }\n')).toEqual(['grants.events.receive: expected a list of patterns like ["notes.*"], got "notes.*"']);
    });
  });

  describe('types and sizes', () => {
    it.each([
      ['  log: { maxCalls: 0 }', `grants.log.maxCalls: ${SIZE_1G}, got 0`],
      ['  log: { maxCalls: -1 }', `grants.log.maxCalls: ${SIZE_1G}, got -1`],
      ['  log: { maxCalls: 1.5 }', `grants.log.maxCalls: ${SIZE_1G}, got 1.5`],
      ['  log: { maxCalls: "10" }', `grants.log.maxCalls: ${SIZE_1G}, got "10"`],
      ['  log: { maxCalls: 1000000001 }', `grants.log.maxCalls: ${SIZE_1G}, got 1000000001`],
      ['  clock: { maxCalls: .inf }', `grants.clock.maxCalls: ${SIZE_1G}, got Infinity`],
      ['  clock: { maxCalls: .nan }', `grants.clock.maxCalls: ${SIZE_1G}, got NaN`],
      ['  log: { maxMessageBytes: 1048577 }', 'grants.log.maxMessageBytes: must be an integer from 1 to 1048576 (1 MiB), got 1048577'],
      ['  random: { maxBytes: 2097152 }', 'grants.random.maxBytes: must be an integer from 1 to 1048576 (1 MiB), got 2097152'],
      ['  random: { maxBytes: "4k" }', 'grants.random.maxBytes: must be an integer from 1 to 1048576 (1 MiB), got "4k"'],
      ['  kv: { maxValueBytes: 0 }', 'grants.kv.maxValueBytes: must be an integer from 1 to 16777216 (16 MiB), got 0'],
      ['  kv: { maxKeyBytes: 4097 }', 'grants.kv.maxKeyBytes: must be an integer from 1 to 4096 (4 KiB), got 4097'],
      ['  events: { kinds: ["a"], maxPayloadBytes: null }', 'grants.events.maxPayloadBytes: must be an integer from 1 to 16777216 (16 MiB), got an empty value'],
    ])('%s', (grants, expected) => {
      expect(grantsIssues(`${grants}\n`)).toEqual([expected]);
    });
    it('rejects bad levels: not a list, unknown, duplicate', () => {
      expect(grantsIssues('  log: { levels: info }\n')).toEqual([
        'grants.log.levels: expected a list of levels (trace, debug, info, warn, error), got "info"',
      ]);
      expect(grantsIssues('  log: { levels: [info, fatal] }\n')).toEqual([
        'grants.log.levels[1]: unknown level "fatal"; use one of trace, debug, info, warn, error',
      ]);
      expect(grantsIssues('  log: { levels: [info, warn, info] }\n')).toEqual(['grants.log.levels[2]: duplicate level "info"; remove one']);
    });
    it('rejects pattern lists that are not lists of strings', () => {
      expect(grantsIssues('  kv: { read: count }\n')).toEqual([
        'grants.kv.read: expected a list of patterns like ["count", "history/*"], got "count"',
      ]);
      expect(grantsIssues('  events: { kinds: counter.* }\n')).toEqual([
        'grants.events.kinds: expected a list of patterns like ["counter.*"], got "counter.*"',
      ]);
      expect(grantsIssues('  kv: { write: [count, 7, { a: 1 }] }\n')).toEqual([
        'grants.kv.write[1]: expected a pattern string, got 7',
        'grants.kv.write[2]: expected a pattern string, got a mapping',
      ]);
    });
    it('rejects an absurdly long pattern list', () => {
      const many = JSON.stringify(Array.from({ length: 1025 }, (_, i) => `k${i}`));
      expect(grantsIssues(`  kv: { read: ${many} }\n`)).toEqual([
        'grants.kv.read: too many patterns (1025); at most 1024, use a prefix pattern like "history/*"',
      ]);
    });
  });

  describe('patterns: every bad shape is an error naming its index', () => {
    it.each([
      ['his*tory', '"*" may only end a pattern (e.g. "history/*")'],
      ['*history', '"*" may only end a pattern (e.g. "history/*")'],
      ['a*b*', '"*" may only end a pattern (e.g. "history/*")'],
      ['history/**', '"**" is not supported; a single trailing "*" already matches any rest (e.g. "history/*")'],
      ['**', '"**" is not supported; a single trailing "*" already matches any rest (e.g. "history/*")'],
      ['', 'empty; use "*" to match everything, a prefix like "history/*", or the exact text'],
      ['a\tb', 'contains the control character U+0009; patterns must be printable text'],
      ['a\u0000', 'contains the control character U+0000; patterns must be printable text'],
      ['a\u007f', 'contains the control character U+007F; patterns must be printable text'],
      ['a\u0085', 'contains the control character U+0085; patterns must be printable text'],
    ])('kv.read rejects %j', (pattern, problem) => {
      const error = policyError(() =>
        compilePolicy({ version: 1, component: 'counter', grants: { kv: { read: ['count', pattern] } } }),
      );
      expect(error.issues).toEqual([{ path: 'grants.kv.read[1]', message: `bad pattern ${JSON.stringify(pattern)}: ${problem}` }]);
    });
    it('uses an event-kind example for events patterns', () => {
      expect(grantsIssues('  events: { kinds: ["counter.*.done"] }\n')).toEqual([
        'grants.events.kinds[0]: bad pattern "counter.*.done": "*" may only end a pattern (e.g. "counter.*")',
      ]);
    });
    it('rejects a lone surrogate', () => {
      const error = policyError(() => compilePolicy({ version: 1, component: 'c', grants: { kv: { write: ['a\uD800'] } } }));
      expect(error.issues).toEqual([
        { path: 'grants.kv.write[0]', message: 'bad pattern "a\\ud800": contains the lone surrogate U+D800; patterns must be valid Unicode' },
      ]);
    });
    it('rejects a kv pattern longer than maxKeyBytes (counted in UTF-8 bytes)', () => {
      expect(grantsIssues('  kv: { maxKeyBytes: 4, read: ["abcd", "abcde"], write: ["éé*"] }\n')).toEqual([
        'grants.kv.read[1]: bad pattern "abcde": 5 bytes, longer than grants.kv.maxKeyBytes (4); shorten it or raise maxKeyBytes',
        'grants.kv.write[0]: bad pattern "éé*": 5 bytes, longer than grants.kv.maxKeyBytes (4); shorten it or raise maxKeyBytes',
      ]);
      const long = 'k'.repeat(257);
      expect(grantsIssues(`  kv: { read: ["${long}"] }\n`)).toEqual([
        `grants.kv.read[0]: bad pattern "${'k'.repeat(55)}…": 257 bytes, longer than grants.kv.maxKeyBytes (256); shorten it or raise maxKeyBytes`,
      ]);
    });
    it('rejects an event kind pattern longer than 256 bytes', () => {
      expect(grantsIssues(`  events: { kinds: ["${'e'.repeat(257)}"] }\n`)).toEqual([
        `grants.events.kinds[0]: bad pattern "${'e'.repeat(55)}…": 257 bytes, longer than the longest event kind (256 bytes); shorten it`,
      ]);
    });
    it('rejects duplicate patterns, naming the first', () => {
      expect(grantsIssues('  kv: { read: [count, "history/*", count], write: ["*", "*"] }\n')).toEqual([
        'grants.kv.read[2]: duplicate pattern "count" (same as grants.kv.read[0]); remove one',
        'grants.kv.write[1]: duplicate pattern "*" (same as grants.kv.write[0]); remove one',
      ]);
      expect(grantsIssues('  events: { kinds: ["a.*", "a.*"] }\n')).toEqual([
        'grants.events.kinds[1]: duplicate pattern "a.*" (same as grants.events.kinds[0]); remove one',
      ]);
    });
  });

  describe('YAML and JSON parsing', () => {
    it('rejects duplicate YAML keys (a duplicate could hide a grant), with both positions', () => {
      expect(grantsIssues('  kv: { write: ["*"] }\n  clock: {}\n  kv: deny\n')).toEqual([
        'grants.kv: duplicate key at 6:3 (first at 4:3); each key may appear only once, since a duplicate could hide a grant',
      ]);
      expect(yamlIssues('version: 1\ncomponent: a\ncomponent: b\ngrants: {}\n')).toEqual([
        'component: duplicate key at 3:1 (first at 2:1); each key may appear only once, since a duplicate could hide a grant',
      ]);
      expect(grantsIssues('  kv: { read: [a], read: [b] }\n')).toEqual([
        'grants.kv.read: duplicate key at 4:20 (first at 4:9); each key may appear only once, since a duplicate could hide a grant',
      ]);
    });
    it('rejects duplicate JSON keys too (JSON.parse would keep the last silently)', () => {
      const error = policyError(() =>
        parsePolicyText('{"version": 1, "component": "c",\n "grants": {"kv": {"write": ["*"]}, "kv": "deny"}}', 'p.json'),
      );
      expect(error.issues).toEqual([
        {
          path: 'grants.kv',
          message: 'duplicate key at 2:37 (first at 2:13); each key may appear only once, since a duplicate could hide a grant',
        },
      ]);
    });
    it('reports a YAML syntax error with line:column', () => {
      expect(yamlIssues(`${HEADER}grants:\n  kv: { read: [a }\n`)).toEqual([
        '4:18: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]',
        '4:19: YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }',
      ]);
      expect(yamlIssues(`${HEADER}grants: {}\n---\nversion: 2\n`)[0]).toBe(
        '4:1: YAML syntax error: Source contains multiple documents; please use YAML.parseAllDocuments()',
      );
    });
    it('refuses YAML tags', () => {
      expect(yamlIssues(`${HEADER}grants: {}\naudit: !!binary aGk=\n`)).toEqual([
        '4:8: unsupported YAML tag !!binary; write plain values without tags',
      ]);
      expect(yamlIssues(`${HEADER}grants: !custom {}\n`)).toEqual(['3:9: unsupported YAML tag !custom; write plain values without tags']);
    });
    it('reports malformed JSON with line:column', () => {
      const error = policyError(() => parsePolicyText('{"version": 1,\n "component": "c",}', 'p.json'));
      expect(error.message).toBe('policy p.json is invalid:\n  2:19: JSON syntax error: Expected double-quoted property name');
      expect(policyError(() => parsePolicyText('{"version": 1', 'p.json')).issues).toEqual([
        { path: '1:14', message: "JSON syntax error: Expected ',' or '}' after property value" },
      ]);
    });
    it('treats content starting with "{" as JSON when the name has no extension', () => {
      const error = policyError(() => parsePolicyText('{"version": 1, }', '<inline>'));
      expect(error.issues[0]?.message).toMatch(/^JSON syntax error: /);
      expect(parsePolicyText('{"version": 1, "component": "c", "grants": {}}', '<inline>').component).toBe('c');
    });
    it('rejects an empty policy, and one with only comments', () => {
      const message = 'policy p.yaml is invalid:\n  the policy is empty; it needs at least version, component and grants';
      expect(policyError(() => parsePolicyText('', 'p.yaml')).message).toBe(message);
      expect(policyError(() => parsePolicyText('  \n\n', 'p.yaml')).message).toBe(message);
      expect(policyError(() => parsePolicyText('# nothing granted yet\n', 'p.yaml')).message).toBe(message);
      expect(policyError(() => parsePolicyText('', 'p.json')).message).toBe(message.replace('p.yaml', 'p.json'));
    });
    it('keeps the message short when there are many problems', () => {
      const kinds = JSON.stringify(Array.from({ length: 30 }, (_, i) => `a*${i}`));
      const error = policyError(() => parsePolicyText(`${HEADER}grants: { events: { kinds: ${kinds} } }\n`, 'p.yaml'));
      expect(error.issues).toHaveLength(30);
      expect(error.message.split('\n')).toHaveLength(22);
      expect(error.message.endsWith('\n  … and 10 more')).toBe(true);
    });
  });
});

describe('policy: matchers', () => {
  function kvPolicy(read: string[]): KvGrant {
    const kv = compilePolicy({ version: 1, component: 'c', grants: { kv: { read } } }).grants.kv;
    if (kv?.mode !== 'grant') throw new Error('expected a kv grant');
    return kv;
  }

  it('compiles "history/*" to a prefix matcher: history/1 and history/ but not history nor historyX', () => {
    const [matcher] = kvPolicy(['history/*']).read;
    expect(matcher).toMatchObject({ rule: 'grants.kv.read[0]', pattern: 'history/*', kind: 'prefix', text: 'history/' });
    expect(['history/1', 'history/', 'history/a/b'].map((k) => matcher!.test(k))).toEqual([true, true, true]);
    expect(['history', 'historyX', 'History/1', '', 'x/history/1'].map((k) => matcher!.test(k))).toEqual([false, false, false, false, false]);
  });

  it('compiles "counter.*" to a prefix on "counter."', () => {
    const events = compilePolicy({ version: 1, component: 'c', grants: { events: { kinds: ['counter.*'] } } }).grants.events as EventsGrant;
    const [matcher] = events.kinds;
    expect(matcher).toMatchObject({ rule: 'grants.events.kinds[0]', kind: 'prefix', text: 'counter.' });
    expect(matcher!.test('counter.incremented')).toBe(true);
    expect(matcher!.test('counter.')).toBe(true);
    expect(matcher!.test('counterX')).toBe(false);
    expect(matcher!.test('counter')).toBe(false);
  });

  it('compiles an exact pattern to an exact matcher, and "x*" to a prefix', () => {
    const [exact, prefix] = kvPolicy(['count', 'count*']).read;
    expect(exact).toMatchObject({ kind: 'exact', text: 'count' });
    expect([exact!.test('count'), exact!.test('count2'), exact!.test('coun'), exact!.test('Count')]).toEqual([true, false, false, false]);
    expect(prefix).toMatchObject({ kind: 'prefix', text: 'count' });
    expect([prefix!.test('count'), prefix!.test('count2'), prefix!.test('coun')]).toEqual([true, true, false]);
  });

  it('compiles "*" to any, which matches everything including the empty key', () => {
    const [any] = kvPolicy(['*']).read;
    expect(any).toMatchObject({ kind: 'any', text: '', pattern: '*' });
    expect(['', 'a', 'secrets/x', '*'].every((k) => any!.test(k))).toBe(true);
  });

  it('treats regex and glob characters other than a trailing * as literal text', () => {
    const [a, b] = kvPolicy(['a.b', 'x?[y]']).read;
    expect([a!.test('a.b'), a!.test('aXb')]).toEqual([true, false]);
    expect([b!.test('x?[y]'), b!.test('xy')]).toEqual([true, false]);
  });

  it('firstMatch returns the first matching rule in policy order, or undefined', () => {
    const { read } = kvPolicy(['count', 'history/*', '*']);
    expect(firstMatch(read, 'count')?.rule).toBe('grants.kv.read[0]');
    expect(firstMatch(read, 'history/3')?.rule).toBe('grants.kv.read[1]');
    expect(firstMatch(read, 'other')?.rule).toBe('grants.kv.read[2]');
    expect(firstMatch(kvPolicy([]).read, 'count')).toBeUndefined();
  });
});

describe('policy: compiled form', () => {
  const FULL_YAML = `version: 1
component: counter              # the ledger name and kv namespace
audit: { capture: full }
grants:
  log:    { levels: [info, warn, error], maxCalls: 1000, maxMessageBytes: 4096 }
  clock:  {}
  random: { maxBytes: 4096 }
  kv:     { read: ["count", "history/*"], write: ["count"], maxValueBytes: 65536 }
  events: deny
`;

  it('compiles the example policy', () => {
    const policy = parsePolicyText(FULL_YAML, 'policy.yaml');
    expect(policy.component).toBe('counter');
    expect(policy.capture).toBe('full');
    expect(policy.source).toBe('policy.yaml');
    const log = policy.grants.log as LogGrant;
    expect(log).toMatchObject({ mode: 'grant', rule: 'grants.log', maxCalls: 1000, maxMessageBytes: 4096 });
    expect([...log.levels]).toEqual(['info', 'warn', 'error']);
    expect(policy.grants.clock).toEqual({ mode: 'grant', rule: 'grants.clock', maxCalls: DEFAULT_MAX_CALLS });
    expect(policy.grants.random).toEqual({ mode: 'grant', rule: 'grants.random', maxCalls: 100_000, maxBytes: 4096 });
    const kv = policy.grants.kv as KvGrant;
    expect(kv.read.map((m) => [m.rule, m.kind, m.text])).toEqual([
      ['grants.kv.read[0]', 'exact', 'count'],
      ['grants.kv.read[1]', 'prefix', 'history/'],
    ]);
    expect(kv.write.map((m) => m.rule)).toEqual(['grants.kv.write[0]']);
    expect(policy.grants.events).toEqual({ mode: 'deny', rule: 'grants.events' });
    expect(policy.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('fills every default into document, and leaves ungranted interfaces absent', () => {
    const policy = parsePolicyText(`${HEADER}grants:\n  log: {}\n  clock: {}\n  random: {}\n  kv: {}\n  events: { kinds: ["counter.*"] }\n`, 'p.yaml');
    expect(policy.document).toEqual({
      version: 1,
      component: 'counter',
      audit: { capture: 'full', maxCaptureBytes: 65536 },
      limits: { fuel: 1000000000, timeoutMs: 10000, memoryMiB: 64, maxOutputBytes: 1048576, maxLedgerBytes: 268435456, maxAsks: 20 },
      grants: {
        log: { levels: ['trace', 'debug', 'info', 'warn', 'error'], maxCalls: 100_000, maxMessageBytes: 4096 },
        clock: { maxCalls: 100_000 },
        random: { maxCalls: 100_000, maxBytes: 4096 },
        kv: { maxCalls: 100_000, read: [], write: [], maxValueBytes: 65_536, maxKeyBytes: 256, ask: [], askTimeoutMs: 60_000, maxKeys: 10_000, maxTotalBytes: 67_108_864 },
        events: { maxCalls: 100_000, kinds: ['counter.*'], maxPayloadBytes: 65_536 },
      },
    });
    const none = parsePolicyText(`${HEADER}grants: {}\n`, 'p.yaml');
    expect(none.grants).toEqual({});
    expect(none.document.grants).toEqual({});
    expect(Object.keys(none.document.grants)).toEqual([]);
  });

  it('allows an empty levels list: log is granted but every write is denied', () => {
    const log = parsePolicyText(`${HEADER}grants: { log: { levels: [] } }\n`, 'p.yaml').grants.log as LogGrant;
    expect(log.mode).toBe('grant');
    expect(log.levels.size).toBe(0);
  });

  it('gives the same digest for the same policy in YAML and in JSON, whatever the key and level order', () => {
    const yaml = parsePolicyText(FULL_YAML, 'policy.yaml');
    const json = parsePolicyText(
      JSON.stringify({
        grants: {
          events: 'deny',
          kv: { maxValueBytes: 65536, write: ['count'], read: ['count', 'history/*'] },
          random: { maxBytes: 4096 },
          clock: {},
          log: { maxMessageBytes: 4096, maxCalls: 1000, levels: ['error', 'info', 'warn'] },
        },
        component: 'counter',
        version: 1,
      }),
      'policy.json',
    );
    expect(json.digest).toBe(yaml.digest);
    expect(json.document).toEqual(yaml.document);
    const other = parsePolicyText(FULL_YAML.replace('maxCalls: 1000', 'maxCalls: 1001'), 'policy.yaml');
    expect(other.digest).not.toBe(yaml.digest);
  });

  it('recompiles its document (as sent to a worker) to the same policy and digest', () => {
    const policy = parsePolicyText(FULL_YAML, 'policy.yaml');
    const again = compilePolicy(structuredClone(policy.document));
    expect(again.digest).toBe(policy.digest);
    expect(again.document).toEqual(policy.document);
    expect(again.source).toBe('<inline>');
    expect((again.grants.kv as KvGrant).read.map((m) => m.rule)).toEqual(['grants.kv.read[0]', 'grants.kv.read[1]']);
  });

  it('capture: digest', () => {
    const policy = parsePolicyText(`${HEADER}audit: { capture: digest }\ngrants: {}\n`, 'p.yaml');
    expect(policy.capture).toBe('digest');
    expect(policy.document.audit).toEqual({ capture: 'digest', maxCaptureBytes: 65536 });
    expect(parsePolicyText(`${HEADER}audit: {}\ngrants: {}\n`, 'p.yaml').capture).toBe('full');
  });

  it('every interface can be denied, each with its own rule id', () => {
    const policy = parsePolicyText(
      `${HEADER}grants: { log: deny, clock: deny, random: deny, kv: deny, events: deny }\n`,
      'p.yaml',
    );
    for (const name of ['log', 'clock', 'random', 'kv', 'events'] as const) {
      expect(policy.grants[name]).toEqual({ mode: 'deny', rule: `grants.${name}` });
      expect(policyKeyFor(name)).toBe(`grants.${name}`);
    }
    expect(policy.document.grants).toEqual({ log: 'deny', clock: 'deny', random: 'deny', kv: 'deny', events: 'deny' });
  });

  it('is read-only: document, grants, matchers and levels cannot be changed', () => {
    const policy: CompiledPolicy = parsePolicyText(FULL_YAML, 'policy.yaml');
    const log = policy.grants.log as LogGrant;
    expect(() => (log.levels as Set<string>).add('trace')).toThrow('a compiled policy is read-only');
    expect(() => (log.levels as Set<string>).delete('info')).toThrow('a compiled policy is read-only');
    expect(Object.isFrozen(policy)).toBe(true);
    expect(Object.isFrozen(policy.grants)).toBe(true);
    expect(Object.isFrozen((policy.grants.kv as KvGrant).read)).toBe(true);
    expect(Object.isFrozen((policy.grants.kv as KvGrant).read[0])).toBe(true);
    expect(Object.isFrozen((policy.document.grants.kv as { read: string[] }).read)).toBe(true);
  });

  it('does not share state with the object it was compiled from', () => {
    const input = { version: 1, component: 'c', grants: { kv: { read: ['a'] } } };
    const policy = compilePolicy(input);
    input.grants.kv.read.push('*');
    expect((policy.grants.kv as KvGrant).read.map((m) => m.pattern)).toEqual(['a']);
    expect(policy.document.grants.kv).toMatchObject({ read: ['a'] });
  });
});

describe('policy: loadPolicyFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ice-policy-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, content: string | Buffer): string => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  it('loads a YAML file and a JSON file with the same digest', () => {
    const yamlPath = write('policy.yaml', `${HEADER}grants:\n  kv: { read: ["*"], write: [count] }\n`);
    const jsonPath = write('policy.json', JSON.stringify({ version: 1, component: 'counter', grants: { kv: { read: ['*'], write: ['count'] } } }, null, 2));
    const fromYaml = loadPolicyFile(yamlPath);
    const fromJson = loadPolicyFile(jsonPath);
    expect(fromYaml.source).toBe(yamlPath);
    expect(fromJson.source).toBe(jsonPath);
    expect(fromJson.digest).toBe(fromYaml.digest);
  });

  it('accepts a UTF-8 byte order mark', () => {
    const path = write('bom.json', '\uFEFF' + JSON.stringify({ version: 1, component: 'c', grants: {} }));
    expect(loadPolicyFile(path).component).toBe('c');
  });

  it('names the file in errors', () => {
    const path = write('bad.yaml', `${HEADER}grants: { kv: allow }\n`);
    expect(policyError(() => loadPolicyFile(path)).message).toBe(
      `policy ${path} is invalid:\n  grants.kv: expected settings like kv: { read: ["count"], write: ["count"] }, or "deny" to deny every call; got "allow"`,
    );
  });

  it('reports a missing file as "policy file … not found"', () => {
    const path = join(dir, 'missing.yaml');
    const error = policyError(() => loadPolicyFile(path));
    expect(error.message).toBe(`policy file ${path} not found`);
    expect(error.source).toBe(path);
    expect(error.issues).toEqual([{ path: '', message: 'file not found' }]);
  });

  it('reports a directory as unreadable', () => {
    const path = join(dir, 'a-directory.yaml');
    mkdirSync(path);
    expect(policyError(() => loadPolicyFile(path)).message).toMatch(new RegExp(`^policy file ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} could not be read: it is a directory: pass the policy file itself`));
  });

  it('rejects an empty file, invalid UTF-8, and an oversized file', () => {
    expect(policyError(() => loadPolicyFile(write('empty.yaml', ''))).issues).toEqual([
      { path: '', message: 'the policy is empty; it needs at least version, component and grants' },
    ]);
    expect(policyError(() => loadPolicyFile(write('latin1.yaml', Buffer.from([0x63, 0x3a, 0x20, 0xe9, 0x0a])))).issues).toEqual([
      { path: '', message: 'the file is not valid UTF-8' },
    ]);
    expect(policyError(() => loadPolicyFile(write('huge.yaml', '#'.repeat(1024 * 1024 + 1)))).issues).toEqual([
      { path: '', message: 'the policy is 1048577 bytes; at most 1048576 (1 MiB) are read' },
    ]);
  });
});
