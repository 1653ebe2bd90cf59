/** The `ice` command as a user runs it: a child process per call, real files, exit codes. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ice, tempDir, writePolicy } from './helpers.js';
import { POLICIES } from './fixtures/policies.js';
import { guestWasm } from './paths.js';

const COUNTER_POLICY = writePolicy(`version: 1
component: counter
grants:
  log: deny
  kv: { read: ["count", "history/*"], write: ["count"] }
`);

describe('ice run', () => {
  it('prints the output on stdout, one summary line on stderr, and keeps kv across processes', () => {
    const state = tempDir();
    const first = ice(['run', guestWasm('counter'), '--policy', COUNTER_POLICY, '--state', state]);
    expect(first).toMatchObject({ code: 0, stdout: 'count=1\n' });
    expect(first.stderr).toMatch(/^run \S+ ok · 3 calls \(2 allowed, 1 denied, 0 limited, 0 invalid\) · fuel \d+ · ledger root [0-9a-f]{16}\n$/);
    const second = ice(['run', guestWasm('counter'), '--policy', COUNTER_POLICY, '--state', state, '--input', 'again']);
    expect(second).toMatchObject({ code: 0, stdout: 'count=2\n' });
  });

  it('exits 1 when the guest returns err', () => {
    const policy = POLICIES.hello();
    const out = ice(['run', guestWasm('hello'), '--policy', policy, '--state', tempDir()]);
    expect(out.code).toBe(1);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(/^run \S+ error: hello needs a name · /);
  });

  it('exits 3 on a trap and still writes the run-end record', () => {
    const state = tempDir();
    const policy = POLICIES.trap();
    const out = ice(['run', guestWasm('trap'), '--policy', policy, '--state', state]);
    expect(out.code).toBe(3);
    expect(out.stderr).toMatch(/trap \(guest blame\): wasm trap: .*unreachable/);
    const audit = ice(['audit', 'show', 'last', '--json', '--state', state]);
    const records = audit.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(records.map((r) => r.type)).toEqual(['run-start', 'call', 'run-end']);
    expect(records[2]).toMatchObject({ outcome: 'trap', blame: 'guest' });
  });

  it('exits 2 with the policy path and fix for a bad policy, never a stack trace', () => {
    const policy = writePolicy('version: 1\ncomponent: hello\ngrants:\n  log: {}\n  kvv: {}\n');
    const out = ice(['run', guestWasm('hello'), '--policy', policy, '--state', tempDir()]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(`policy ${policy} is invalid`);
    expect(out.stderr).toContain('grants.kvv: unknown key');
    expect(out.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 2 for a non-component and for usage errors', () => {
    const junk = join(tempDir(), 'junk.wasm');
    writeFileSync(junk, 'not wasm at all');
    const policy = POLICIES.hello();
    const out = ice(['run', junk, '--policy', policy, '--state', tempDir()]);
    expect(out).toMatchObject({ code: 2, stdout: '' });
    expect(out.stderr).toContain(`${junk} is not a WebAssembly binary`);
    expect(ice(['run', guestWasm('hello')]).stderr).toContain('--policy <file> is required');
    expect(ice(['run', guestWasm('hello')]).code).toBe(2);
    expect(ice(['frobnicate']).code).toBe(2);
  });
});

describe('ice audit show', () => {
  it('prints the run as a table with every call, decision and rule', () => {
    const state = tempDir();
    ice(['run', guestWasm('counter'), '--policy', COUNTER_POLICY, '--state', state, '--input', 'hi']);
    const out = ice(['audit', 'show', 'last', '--state', state]);
    expect(out.code).toBe(0);
    for (const text of ['kv.get', 'kv.set', 'grants.kv.read[0]', 'grants.kv.write[0]', 'deny', 'grants.kv.write']) {
      expect(out.stdout).toContain(text);
    }
  });

  it('says so when there is no such run', () => {
    const state = tempDir();
    ice(['run', guestWasm('counter'), '--policy', COUNTER_POLICY, '--state', state]);
    const out = ice(['audit', 'show', 'no-such-run', '--state', state]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('no run no-such-run');
  });
});

describe('ice inspect and ice build', () => {
  it('lists imports, exports and the policy keys a component needs', () => {
    const out = ice(['inspect', guestWasm('counter')]);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('ice:agent/kv@0.1.0');
    expect(out.stdout).toContain('run: func(input: string) -> result<string, string>');
    expect(out.stdout).toContain('policy keys it needs: grants.log, grants.kv');
  });

  it('builds a guest from source into a component that runs', () => {
    const out = join(tempDir(), 'hello.wasm');
    const build = ice(['build', 'guests/hello', '-o', out]);
    expect(build.code).toBe(0);
    expect(build.stderr).toMatch(/^built guests\/hello \(assemblyscript\) → .*hello\.wasm: component \d+ bytes/);
    const policy = POLICIES.hello();
    expect(ice(['run', out, '--policy', policy, '--input', 'build', '--state', tempDir()])).toMatchObject({ code: 0, stdout: 'hello, build!\n' });
  });

  it('reports a compile error with the file and line', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'index.ts'), 'import { Result } from "ice";\nexport function run(input: string): Result<string, string> {\n  return nope;\n}\n');
    const out = ice(['build', dir, '-o', join(dir, 'out.wasm')]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('index.ts');
    expect(out.stderr).not.toMatch(/\n\s+at /);
  });
});
