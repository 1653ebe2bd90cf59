/**
 * The `ice` CLI against hostile text and user mistakes, through the real binary (bin/ice.js, after
 * `npm run build`): guest text never reaches the terminal raw, JSON carries it escaped, and every
 * path mistake gets a message that names the fix.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { cliApprover } from '../host/src/cli/approve.js';
import type { Host } from '../host/src/index.js';
import { freshHost, ice, tempDir, writePolicy } from './helpers.js';
import { POLICIES } from './fixtures/policies.js';
import { LANGUAGES, guestWasm } from './paths.js';

/** A window-title change, an erase-line + carriage return forging "ok", a bidi override, NEL, an 8-bit CSI, ALM. */
const HOSTILE = 'a\u001b]0;pwned\u0007b\u001b[2K\rok \u202eevil\u0085x\u009by\u061cz\u2066w\u200f';
/** The same text as every human output shows it: each unsafe character as its `\u` escape. */
const SHOWN = 'a\\u001b]0;pwned\\u0007b\\u001b[2K\\u000dok \\u202eevil\\u0085x\\u009by\\u061cz\\u2066w\\u200f';

// Anything that could drive a terminal or reorder text: C0 except \n and \t, DEL, C1, bidi controls.
// eslint-disable-next-line no-control-regex
const RAW_UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/u;

const HOSTILE_POLICY = writePolicy('version: 1\ncomponent: hostile\ngrants:\n  log: {}\n  clock: deny\n  kv: deny\n  events: deny\n');

/** Every string anywhere inside a parsed JSON value. */
function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (value && typeof value === 'object') return Object.values(value).flatMap(strings);
  return [];
}

describe.each(LANGUAGES)('terminal injection (%s guests)', (language) => {
  it('ice run: the result, the --log line and the summary show guest text escaped', () => {
    const state = tempDir();
    const out = ice(['run', guestWasm('hello', language), '--policy', POLICIES.hello(), '--state', state, '--log', '--input', HOSTILE]);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(`hello, ${SHOWN}!\n`);
    expect(out.stderr).toMatch(
      new RegExp(`^\\[hello info\\] hello called with ${HOSTILE.length} chars\\nrun \\S+ ok · 1 call \\(1 allowed, 0 denied, 0 limited, 0 invalid\\) · fuel \\d+ · ledger root [0-9a-f]{16}\\n$`, 'u'),
    );
  });

  it('ice run --log: a guest log line cannot forge a line of ICE output', () => {
    const state = tempDir();
    const out = ice(['run', guestWasm('hostile', language), '--policy', HOSTILE_POLICY, '--state', state, '--log', '--input', `log-echo:${HOSTILE}\nrun forged ok`]);
    expect(out.code).toBe(0);
    expect(out.stdout).toBe('logged\n');
    const lines = out.stderr.split('\n');
    expect(lines[0]).toBe(`[hostile info] ${SHOWN}\\u000arun forged ok`);
    expect(lines[1]).toMatch(/^run \S+ ok · /);
    expect(lines).toHaveLength(3);
  });

  it('ice run: an error echoing guest text is one escaped line', () => {
    const out = ice(['run', guestWasm('hostile', language), '--policy', HOSTILE_POLICY, '--state', tempDir(), '--input', `${HOSTILE}\nrun forged ok`]);
    expect(out.code).toBe(1);
    expect(out.stderr).not.toMatch(RAW_UNSAFE);
    // Whitespace (the \r and the \n) folds to one space: the summary is one line.
    const folded = SHOWN.replace('\\u000d', ' ');
    expect(out.stderr).toMatch(new RegExp(`^run \\S+ error: unknown attack: ${folded.replace(/[\\[\]().*+?^$|{}]/g, '\\$&')} run forged ok · 0 calls`, 'u'));
    expect(out.stderr.split('\n')).toHaveLength(2);
  });

  it('ice audit show prints escapes; --json escapes them and parses back to the original', () => {
    const state = tempDir();
    ice(['run', guestWasm('hostile', language), '--policy', HOSTILE_POLICY, '--state', state, '--input', `log-echo:${HOSTILE}`]);
    const table = ice(['audit', 'show', 'last', '--state', state]);
    expect(table.code).toBe(0);
    expect(table.stdout).not.toMatch(RAW_UNSAFE);
    expect(table.stdout).toContain('log-echo:a\\u001b]0;pwned');

    const json = ice(['audit', 'show', 'last', '--json', '--state', state]);
    expect(json.code).toBe(0);
    expect(json.stdout).not.toMatch(RAW_UNSAFE);
    for (const escape of ['\\u001b', '\\u202e', '\\u0085', '\\u009b', '\\u061c']) expect(json.stdout).toContain(escape);
    const parsed = json.stdout.trimEnd().split('\n').map((line) => JSON.parse(line) as unknown);
    expect(strings(parsed)).toContain(`log-echo:${HOSTILE}`);
    expect(strings(parsed)).toContain(HOSTILE);
  });
});

describe('JSON outputs carry hostile text escaped', () => {
  it('ice events list --json and ice inspect --json: escapes only, parsed back to the original', () => {
    const state = tempDir();
    const policy = writePolicy('version: 1\ncomponent: event-emitter\ngrants:\n  log: {}\n  events: { kinds: ["*"] }\n');
    const payload = HOSTILE.replace('\r', '');
    const run = ice(['run', guestWasm('event-emitter'), '--policy', policy, '--state', state, '--input', `note.added ${payload}`]);
    expect(run.code).toBe(0);
    const events = ice(['events', 'list', '--json', '--state', state]);
    expect(events.code).toBe(0);
    expect(events.stdout).not.toMatch(RAW_UNSAFE);
    expect((JSON.parse(events.stdout) as { payload: string }).payload).toBe(payload);
    const table = ice(['events', 'list', '--state', state]);
    expect(table.stdout).not.toMatch(RAW_UNSAFE);

    const named = join(tempDir(), 'x\u202egpj.wasm');
    writeFileSync(named, readFileSync(guestWasm('hello')));
    const inspected = ice(['inspect', named, '--json']);
    expect(inspected.code).toBe(0);
    expect(inspected.stdout).not.toMatch(RAW_UNSAFE);
    expect(inspected.stdout).toContain('x\\u202egpj.wasm');
    expect((JSON.parse(inspected.stdout) as { component: string }).component).toBe(named);
    expect(ice(['inspect', named]).stdout).toContain('component ' + named.replace('\u202e', '\\u202e'));
  });
});

describe('machine output stays exact', () => {
  it('ice audit export (to a file or pipe) is the stored bytes: it still verifies', () => {
    const state = tempDir();
    ice(['run', guestWasm('hostile'), '--policy', HOSTILE_POLICY, '--state', state, '--input', `log-echo:${HOSTILE}`]);
    const exported = ice(['audit', 'export', 'last', '--format', 'jsonl', '--state', state]);
    expect(exported.code).toBe(0);
    const file = join(tempDir(), 'run.jsonl');
    writeFileSync(file, exported.stdout);
    const verified = ice(['audit', 'verify', '--file', file, '--state', state]);
    expect(verified).toMatchObject({ code: 0 });
    expect(verified.stdout).toMatch(/^ok: /);
  });
});

describe('WASI stdout/stderr of a guest', () => {
  it('is shown as marked lines, escaped, however the chunks split', async () => {
    const { guestOutputWriter } = await import('../host/src/cli/run.js');
    const { safeIo } = await import('../host/src/cli/io.js');
    let shown = '';
    const write = guestOutputWriter(safeIo({ stdout: () => undefined, stderr: (text) => void (shown += text) }));
    const chunk = (text: string, stream: 'stdout' | 'stderr' = 'stdout') => write({ component: 'agent', runId: 'r', stream, text });
    chunk('one\x1b]0;pwned\x07\nrun forged ');
    chunk('ok\r\n\u202eright', 'stderr');
    chunk('\n');
    chunk('\u0085\x9b\n', 'stderr');
    expect(shown).toBe(
      '[agent stdout] one\\u001b]0;pwned\\u0007\n[agent stdout] run forged \n[agent stderr] ok\\u000d\n[agent stderr] \\u202eright\n[agent stdout] \n[agent stderr] \\u0085\\u009b\n',
    );
  });
});

describe('path and argument mistakes: a message with the fix, exit 2, never a raw code', () => {
  const dir = tempDir();
  const aDir = join(dir, 'adir');
  const aFile = join(dir, 'afile');
  mkdirSync(aDir);
  writeFileSync(aFile, 'x');
  const hello = guestWasm('hello');
  const cases: Array<[string, string[], RegExp]> = [
    ['build -o <dir>', ['build', join('guests', 'hello'), '-o', aDir], /^ice build: cannot write -o .*adir: it is a directory; name a file in it, e\.g\. -o .*adir\/out\.wasm\n$/],
    ['build -o <file>/x.wasm', ['build', join('guests', 'hello'), '-o', join(aFile, 'x.wasm')], /^ice build: cannot create the directory .*afile for -o .*: it is a file, not a directory; choose another path\n$/],
    ['run --state <file>', ['run', hello, '--policy', POLICIES.hello(), '--state', aFile, '--input', 'x'], /^ice run: --state .*afile is a file, not a directory: pass --state <dir> with a directory/],
    ['audit list --state <file>', ['audit', 'list', '--state', aFile], /^ice audit list: --state .*afile is a file, not a directory/],
    ['events list --state <file>', ['events', 'list', '--state', aFile], /^ice events list: --state .*afile is a file, not a directory/],
    ['run --policy <dir>', ['run', hello, '--policy', aDir], /^policy file .*adir could not be read: it is a directory: pass the policy file itself \(e\.g\. .*adir\/policy\.yaml\)\n$/],
    ['run --input-file <dir>', ['run', hello, '--policy', POLICIES.hello(), '--input-file', aDir], /^ice run: cannot read --input-file .*adir: it is a directory: pass a file, not a directory\n$/],
    ['run --input-file <missing>', ['run', hello, '--policy', POLICIES.hello(), '--input-file', join(dir, 'nope.txt')], /^ice run: cannot read --input-file .*nope\.txt: no such file \(check the path\)\n$/],
    ['inspect <missing>', ['inspect', 'nope.wasm'], /^cannot read component nope\.wasm: no such file \(check the path; `ice build` makes a component from a guest\)\n$/],
    ['run <missing>', ['run', 'nope.wasm', '--policy', POLICIES.hello()], /^cannot read component nope\.wasm: no such file \(check the path; `ice build` makes a component from a guest\)\n$/],
    ['inspect <dir>', ['inspect', aDir], /^cannot read component .*adir: it is a directory: pass the \.wasm file/],
    ['audit verify --file <dir>', ['audit', 'verify', '--file', aDir], /^ice audit verify: cannot read --file .*adir: it is a directory; pass the file `ice audit export` wrote\n$/],
    ['policy version "1"', ['run', hello, '--policy', writePolicy('version: "1"\ncomponent: hello\ngrants:\n  log: {}\n')], /version: expected a number, got the string "1": write "version: 1" without quotes/],
    ['run x.wasm --policy p extra', ['run', hello, '--policy', POLICIES.hello(), 'extra', 'words'], /pass it with --input "extra words" \(or --input-file <path>\); a WASI command's arguments go after --\nusage: ice run /],
  ];
  it.each(cases)('%s', (_name, args, message) => {
    const out = ice(args);
    expect(out.stderr).toMatch(message);
    expect(out.stderr).not.toMatch(/internal error|\bE[A-Z]{3,}\b/);
    expect(out.code).toBe(2);
  });
});

describe('the terminal approver shows the data it lets through', () => {
  const hosts: Host[] = [];
  afterAll(() => hosts.forEach((h) => h.close()));

  /** A fake terminal that answers `n` and keeps what the prompt showed. */
  function terminal() {
    const input = Object.assign(new PassThrough(), { isTTY: true });
    const output = Object.assign(new PassThrough(), { isTTY: true });
    let shown = '';
    output.on('data', (d: Buffer) => {
      shown += d.toString();
      if (shown.endsWith('[y/N] ')) input.write('n\n');
    });
    return { input, output, shown: () => shown };
  }

  async function askedRun(guest: string, policy: object, input: string): Promise<string> {
    const t = terminal();
    const { host } = await freshHost(undefined, { approve: cliApprover(undefined, t).approve });
    hosts.push(host);
    const result = await (await host.load(guestWasm(guest), policy)).run(input);
    expect(result.counts.denied).toBeGreaterThan(0);
    return t.shown();
  }

  it('an http body: escaped, its first 200 characters, with its size', async () => {
    const body = `${HOSTILE}${'b'.repeat(500)}`;
    const shown = await askedRun(
      'http-driver',
      { version: 1, component: 'asker', grants: { log: {}, http: { ask: [{ url: 'http://127.0.0.1:9/*', methods: ['POST'], askTimeoutMs: 5000 }] } } },
      `POST\thttp://127.0.0.1:9/issues\tb:${body}`,
    );
    // readline positions the cursor itself (ESC [ 1 G ...): only the question is the guest's to shape.
    expect(shown.slice(shown.indexOf('ice: asker asks:'), shown.indexOf('[y/N]'))).not.toMatch(RAW_UNSAFE);
    const head = Array.from(body).slice(0, 200).join('');
    const size = Buffer.byteLength(body, 'utf8');
    expect(shown).toContain(`asks: http.fetch POST http://127.0.0.1:9/issues\n     body (${size} bytes, first 200 characters shown): "${head.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}…"\n`);
  });

  it('a kv value, whole when short', async () => {
    const shown = await askedRun(
      'counter',
      { version: 1, component: 'counter', grants: { log: 'deny', kv: { read: ['count', 'history/*'], ask: ['count'] } } },
      '',
    );
    expect(shown).toContain('asks: kv.set set "count"\n     value (1 byte): "1"\n     rule grants.kv.ask[0]');
  });
});
