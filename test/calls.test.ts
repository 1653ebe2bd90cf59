/**
 * Typed exports and WASI commands through the real path: the calc example (Rust, typed exports, built
 * from examples/calc) and a Rust wasi:cli/command (guests/rust/command), loaded under real policy
 * files, every call a governed, recorded, replayable run — through the library and through the CLI.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../host/src/core/digest.js';
import { LoadError } from '../host/src/component/errors.js';
import type { Agent, Host, RunResult } from '../host/src/host.js';
import type { RunStartRecord } from '../host/src/ledger/index.js';
import { callsOf, EXECUTIONS, freshHost, ice, tempDir, writePolicy } from './helpers.js';
import { CALC_COMPONENT, COMMAND_COMPONENT, guestWasm } from './paths.js';

const CALC_POLICY = `version: 1
component: calc
grants:
  kv: { read: ["notes/*"], write: ["notes/*"], maxValueBytes: 4096 }
`;

const COMMAND_POLICY = `version: 1
component: command
grants:
  wasi:
    args: ["command"]
    env: { GREETING: hi }
    stdin: input
    stdout: capture
    stderr: capture
    clocks: allow
    random: allow
    filesystem: deny
`;

function runStart(host: Host, runId: string): RunStartRecord {
  return host.readRun(runId)[0]!.record as RunStartRecord;
}

function fnv1a64(bytes: number[]): string {
  let hash = 0xcbf29ce484222325n;
  for (const b of bytes) hash = ((hash ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return hash.toString();
}

describe.each(EXECUTIONS)('typed exports of the calc example (%s)', (execution) => {
  let host: Host;
  let calc: Agent;
  const policy = writePolicy(CALC_POLICY);

  beforeAll(async () => {
    ({ host } = await freshHost(tempDir(), { execution }));
    calc = await host.load(CALC_COMPONENT, policy);
  });
  afterAll(() => host.close());

  it('lists every export with its WIT type and doc comment', () => {
    expect(calc.implementsRun).toBe(false);
    expect(calc.functions.map((f) => f.name)).toEqual([
      'add',
      'divide',
      'greet',
      'stats',
      'first-char',
      'checksum',
      'remember',
      'recall',
      'geometry.area',
      'geometry.centroid',
      'geometry.describe-style',
    ]);
    expect(calc.function('add').docs).toBe('Adds two numbers, wrapping at 2^32.');
    expect(calc.function('area').interface).toBe('example:calc/geometry@0.1.0');
    expect(calc.function('example:calc/geometry@0.1.0#area').name).toBe('geometry.area');
  });

  it('calls a function: the value comes back as JSON, and the run-start names the function and its arguments', async () => {
    const result = await calc.call('add', { a: 4294967295, b: 2 });
    expect(result).toMatchObject({ ok: true, outcome: 'ok', output: '1', value: 1, calls: 0 });
    const start = runStart(host, result.runId);
    expect(start.invoke).toEqual({ kind: 'call', function: 'add' });
    expect(start.input).toEqual({ value: '{"a":4294967295,"b":2}' });
    expect(host.verify(result.runId).ok).toBe(true);
  });

  it('passes every kind of value both ways', async () => {
    const value = async (fn: string, args: object) => {
      const result = await calc.call(fn, args);
      expect(result.ok, JSON.stringify(result)).toBe(true);
      return result.value;
    };
    expect(await value('divide', { a: '-9223372036854775807', b: -1 })).toBe('9223372036854775807');
    expect(await value('greet', { name: 'Ada' })).toBe('Hello, Ada');
    expect(await value('greet', { name: 'Ada', excited: true })).toBe('Hello, Ada!');
    expect(await value('stats', { xs: [1, 2, 6] })).toEqual([3, 3, 6]);
    expect(await value('stats', { xs: [] })).toEqual([0, 0, 0]);
    expect(await value('first-char', { s: '😀 hi' })).toEqual(['😀', 0x1f600]);
    expect(await value('first-char', { s: '' })).toBeNull();
    expect(await value('checksum', { data: [1, 2, 3, 255] })).toBe(fnv1a64([1, 2, 3, 255]));
    expect(await value('geometry.area', { s: { tag: 'rect', val: [{ x: 0, y: 0 }, { x: 2, y: 3 }] } })).toBe(6);
    expect(await value('geometry.area', { s: { tag: 'empty' } })).toBe(0);
    expect(await value('geometry.area', { s: { tag: 'circle', val: 1 } })).toBeCloseTo(Math.PI);
    expect(await value('geometry.centroid', { points: [{ x: 0, y: 0 }, { x: 2, y: 4 }] })).toEqual({ x: 1, y: 2 });
    expect(await value('geometry.centroid', { points: [] })).toBeNull();
    expect(await value('geometry.describe-style', { s: ['italic', 'bold'], u: 'imperial' })).toBe('bold+italic (imperial)');
    expect(await value('geometry.describe-style', { s: [], u: 'metric' })).toBe('plain (metric)');
  });

  it("a function's err is the run's error outcome, with the err value as JSON", async () => {
    const result = await calc.call('divide', { a: 1, b: 0 });
    expect(result).toMatchObject({ ok: false, outcome: 'error', error: '"division by zero"', value: 'division by zero' });
  });

  it('imports are mediated and recorded: a granted kv write, a denied one returned as the guest error', async () => {
    const kept = await calc.call('remember', { key: 'notes/a', value: 'first' });
    expect(kept).toMatchObject({ ok: true, value: null, calls: 1 });
    expect((await calc.call('recall', { key: 'notes/a' })).value).toBe('first');
    const refused = await calc.call('remember', { key: 'secrets/a', value: 'x' });
    expect(refused.ok).toBe(false);
    expect(refused.outcome).toBe('error');
    expect(refused.counts.denied).toBe(1);
    const [call] = callsOf(host, refused.runId);
    expect(call).toMatchObject({ call: 'ice:agent/kv@0.1.0#set', decision: 'deny' });
    expect(String(refused.value)).toContain('secrets/a');
  });

  it('refuses bad arguments before anything runs, naming the path of the first bad value', async () => {
    const before = host.ledger.listRuns(1000).length;
    await expect(calc.call('add', { a: -1, b: 2 })).rejects.toThrow('invalid arguments for add: a: -1 is out of range for u32 (0 to 4294967295)');
    await expect(calc.call('geometry.centroid', { points: [{ x: 1, y: 'two' }] })).rejects.toMatchObject({ path: 'points[0].y' });
    await expect(calc.call('add', { a: 1 })).rejects.toThrow('b: missing: this parameter is required');
    await expect(calc.call('mul', {})).rejects.toThrow('calc exports no function "mul"; it exports add, divide,');
    await expect(calc.run('x')).rejects.toThrow(/does not implement `run: .*`ice call/);
    await expect(calc.call('greet', { name: 'x'.repeat(1024 * 1024) })).rejects.toThrow(/the arguments are 1048\d{3} bytes, over the host's limit of 1048576 bytes \(maxInputBytes\)/);
    expect(host.ledger.listRuns(1000).length).toBe(before);
  });

  it('replays a call, imports included, from the ledger alone', async () => {
    const result = await calc.call('remember', { key: 'notes/b', value: 'second' });
    const report = await host.replay(result.runId);
    expect(report).toMatchObject({ matches: true, calls: 1, outcome: 'ok' });
    const typed = await calc.call('geometry.centroid', { points: [{ x: 1, y: 1 }] });
    expect(await host.replay(typed.runId)).toMatchObject({ matches: true, calls: 0 });
  });
});

describe('a policy pinned to a component (sha256)', () => {
  const digest = sha256Hex(readFileSync(CALC_COMPONENT));

  it('loads the component it names, refuses any other, and says how to fix it', async () => {
    const { host } = await freshHost();
    try {
      const pinned = writePolicy(`version: 1\ncomponent: calc\nsha256: ${digest.toUpperCase()}\ngrants:\n  kv: { read: ["notes/*"], write: ["notes/*"] }\n`);
      expect((await host.load(CALC_COMPONENT, pinned)).policy.pin).toBe(digest);
      const other = writePolicy(`version: 1\ncomponent: calc\nsha256: ${'a'.repeat(64)}\ngrants:\n  kv: { read: ["notes/*"], write: ["notes/*"] }\n`);
      const error = await host.load(CALC_COMPONENT, other).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LoadError);
      expect((error as LoadError).code).toBe('pin-mismatch');
      expect((error as LoadError).message).toContain(`its sha256 is ${digest}, the policy's sha256 is ${'a'.repeat(64)}`);
    } finally {
      host.close();
    }
  });

  it('holds for ice run and ice call too (exit 2, nothing runs)', () => {
    const other = writePolicy(`version: 1\ncomponent: calc\nsha256: "${'c'.repeat(64)}"\ngrants:\n  kv: { read: ["notes/*"], write: ["notes/*"] }\n`);
    const state = tempDir();
    const out = ice(['call', CALC_COMPONENT, 'add', '--policy', other, '--args', '{"a":1,"b":2}', '--state', state]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('is not the component policy');
    const hello = writePolicy(`version: 1\ncomponent: hello\nsha256: "${'c'.repeat(64)}"\ngrants:\n  log: {}\n`);
    const run = ice(['run', guestWasm('hello'), '--policy', hello, '--input', 'x', '--state', state]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`its sha256 is ${sha256Hex(readFileSync(guestWasm('hello')))}, the policy's sha256 is ${'c'.repeat(64)}`);
    expect(ice(['audit', 'list', '--state', state]).stdout).toContain('0 runs');
  });

  it('refuses a pin that is not a sha256, naming the key', () => {
    const bad = writePolicy('version: 1\ncomponent: calc\nsha256: abc\ngrants: {}\n');
    const out = ice(['call', CALC_COMPONENT, 'add', '--policy', bad, '--args', '{"a":1,"b":2}', '--state', tempDir()]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('sha256');
    expect(out.stderr).toContain('expected the component\'s sha256 as 64 hex digits');
  });
});

describe('ice call, ice inspect, ice audit on typed exports (CLI)', () => {
  const state = tempDir();
  const policy = writePolicy(CALC_POLICY);

  it('prints the result as JSON and exits 0; the err value and exit 1; bad arguments exit 2 naming the path', () => {
    const ok = ice(['call', CALC_COMPONENT, 'geometry.centroid', '--policy', policy, '--state', state, '--args', '{"points":[{"x":1,"y":2},{"x":3,"y":4}]}']);
    expect(ok.stderr).toMatch(/^run \S+ ok · 0 calls/m);
    expect([ok.code, ok.stdout]).toEqual([0, '{"x":2,"y":3}\n']);
    const err = ice(['call', CALC_COMPONENT, 'divide', '--policy', policy, '--state', state, '--args', '{"a":1,"b":0}']);
    expect([err.code, err.stdout]).toEqual([1, '']);
    expect(err.stderr).toContain('error: "division by zero"');
    const bad = ice(['call', CALC_COMPONENT, 'geometry.area', '--policy', policy, '--state', state, '--args', '{"s":{"tag":"square"}}']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('invalid arguments for geometry.area: s.tag: expected one of "circle", "rect", "empty", got the string "square"');
    const notJson = ice(['call', CALC_COMPONENT, 'add', '--policy', policy, '--state', state, '--args', '{a:1}']);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain('--args is not JSON');
    const argsFile = join(tempDir(), 'args.json');
    writeFileSync(argsFile, JSON.stringify({ xs: [1.5, 2.5] }));
    const fromFile = ice(['call', CALC_COMPONENT, 'stats', '--policy', policy, '--state', state, '--args-file', argsFile]);
    expect([fromFile.code, fromFile.stdout]).toEqual([0, '[2,2,2.5]\n']);
  });

  it('audit list and show name the function that was called', () => {
    const list = ice(['audit', 'list', '--state', state]);
    expect(list.stdout).toMatch(/calc\s+geometry\.centroid/);
    expect(list.stdout).toMatch(/calc\s+divide/);
    const show = ice(['audit', 'show', 'last', '--state', state]);
    expect(show.stdout).toMatch(/^called {5}stats$/m);
    expect(show.stdout).toMatch(/^arguments {2}"\{\\"xs\\":\[1\.5,2\.5\]\}"$/m);
    const centroid = ice(['call', CALC_COMPONENT, 'geometry.centroid', '--policy', policy, '--state', state, '--args', '{"points":[]}']);
    expect(centroid.stdout).toBe('null\n');
    expect(ice(['audit', 'show', 'last', '--state', state]).stdout).toMatch(/^called {5}geometry\.centroid {2}\(example:calc\/geometry@0\.1\.0\)$/m);
  });

  it('inspect lists each function with its signature and docs, and --json gives their JSON schemas', () => {
    const text = ice(['inspect', CALC_COMPONENT]);
    expect(text.stdout).toContain('  geometry.area: func(s: shape) -> f64\n      The area of a shape, in square units.');
    const doc = JSON.parse(ice(['inspect', CALC_COMPONENT, '--json']).stdout) as { functions: { name: string; parameters: { properties: Record<string, unknown> }; result: unknown; error?: unknown }[] };
    const divide = doc.functions.find((f) => f.name === 'divide')!;
    expect(divide.result).toMatchObject({ type: 'string', pattern: '^-?(0|[1-9][0-9]*)$' });
    expect(divide.error).toEqual({ type: 'string' });
    const area = doc.functions.find((f) => f.name === 'geometry.area')!;
    expect(area.parameters.properties['s']).toMatchObject({ title: 'shape', description: 'A circle by its radius, a rectangle by two corners, or nothing.' });
  });
});

describe.each(EXECUTIONS)('a WASI command (%s)', (execution) => {
  let host: Host;
  let command: Agent;
  const policy = writePolicy(COMMAND_POLICY);

  beforeAll(async () => {
    ({ host } = await freshHost(tempDir(), { execution }));
    command = await host.load(COMMAND_COMPONENT, policy);
  });
  afterAll(() => host.close());

  const expectOk = (result: RunResult): string => {
    expect(result.ok, JSON.stringify(result)).toBe(true);
    return result.ok ? result.output : '';
  };

  it('gets the policy args then its own, its input as stdin, and its stdout is the output', async () => {
    expect(command.commandExport).toMatch(/^wasi:cli\/run@0\.2\.\d+$/);
    const result = await command.command(['hello', 'wide world'], 'some input');
    expect(expectOk(result)).toBe('args: hello wide world\nstdin: some input\n');
    const start = runStart(host, result.runId);
    expect(start.invoke).toMatchObject({ kind: 'command', args: ['hello', 'wide world'] });
    expect(start.input).toEqual({ value: 'some input' });
  });

  it('sees only the environment the policy gives it', async () => {
    expect(expectOk(await command.command(['--env']))).toBe('args: --env\nstdin: <empty>\nenv: GREETING=hi\n');
  });

  it('a failure exit status is the error outcome', async () => {
    const result = await command.command(['--fail']);
    expect(result).toMatchObject({ ok: false, outcome: 'error', error: 'the command exited with a failure status' });
  });

  it('replays a command run, rebuilding its output from the recorded writes', async () => {
    const result = await command.command(['x'], 'abc');
    expect(await host.replay(result.runId)).toMatchObject({ matches: true, outcome: 'ok' });
  });

  it('refuses an input when the policy does not give stdin as input', async () => {
    const empty = await host.load(COMMAND_COMPONENT, writePolicy(COMMAND_POLICY.replace('stdin: input', 'stdin: empty')));
    await expect(empty.command([], 'text')).rejects.toThrow('does not give the command its input as stdin: set grants.wasi.stdin: input (it is empty)');
    expect(expectOk(await empty.command(['a']))).toBe('args: a\nstdin: <empty>\n');
  });
});

describe('ice run of a WASI command (CLI)', () => {
  const state = tempDir();
  const policy = writePolicy(COMMAND_POLICY);

  it('passes what follows -- as arguments and --input as stdin; the exit status sets the exit code', () => {
    const ok = ice(['run', COMMAND_COMPONENT, '--policy', policy, '--state', state, '--input', 'piped', '--', 'one', '--two']);
    expect([ok.code, ok.stdout]).toEqual([0, 'args: one --two\nstdin: piped\n']);
    expect(ok.stderr).not.toContain('[command stdout]');
    const failed = ice(['run', COMMAND_COMPONENT, '--policy', policy, '--state', state, '--', '--fail']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('[command stderr] failing');
    expect(failed.stderr).toContain('error: the command exited with a failure status');
    const replay = ice(['replay', 'last', '--state', state]);
    expect(replay.code).toBe(0);
  });

  it('refuses arguments after -- for a component that is not a command', () => {
    const out = ice(['run', CALC_COMPONENT, '--policy', writePolicy(CALC_POLICY), '--state', state, '--', 'x']);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('is not a WASI command, so it takes no arguments after --');
  });
});
