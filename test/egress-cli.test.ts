/**
 * `ice run` with egress: --secrets, --approve all|none, and the refusals a user meets first. The CLI runs
 * as a child process (asynchronously: the test's server must keep answering while it runs).
 */
import { spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliApprover } from '../host/src/cli/approve.js';
import { echoServer, type TestServer } from './egress-servers.js';
import { line } from './driver.js';
import { tempDir, type CliResult } from './helpers.js';
import { guestWasm, ICE_BIN, ROOT } from './paths.js';

const SECRET = 'cli-secret-5be1a0f94c';
let server: TestServer;
// One state directory for every run: the component is prepared once and served from its disk cache after.
let dir: string;

function iceAsync(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    // stdin is not a terminal: without --approve, asks are denied rather than prompted.
    const child = spawn(process.execPath, [ICE_BIN, ...args], { cwd: ROOT, env: { ...process.env, ICE_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function file(name: string, text: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

beforeAll(async () => {
  server = await echoServer();
  dir = tempDir('ice-egress-cli-');
});
afterAll(async () => {
  await server.close();
});

function policy(): string {
  return file(
    'policy.yaml',
    [
      'version: 1',
      'component: cli-egress',
      'grants:',
      '  log: {}',
      '  http:',
      '    allow:',
      `      - { url: "${server.origin}/echo", inject: { header: X-Api-Key, secret: CLI_API_KEY } }`,
      '    ask:',
      `      - { url: "${server.origin}/*", methods: [POST], askTimeoutMs: 5000 }`,
      '',
    ].join('\n'),
  );
}

const input = () => [line('GET', `${server.origin}/echo`), line('POST', `${server.origin}/submit`, 'b:x')].join('\n');

describe('ice run with egress', () => {
  it('--approve all: injects the secret from --secrets, approves the ask, and records who approved', async () => {
    const state = join(dir, 'state');
    const secrets = file('secrets.yaml', `CLI_API_KEY: ${SECRET}\n`);
    const run = await iceAsync(['run', guestWasm('http-driver'), '--policy', policy(), '--secrets', secrets, '--approve', 'all', '--state', state, '--input', input()]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.split('\n').slice(0, 2).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['ok 200', 'ok 200']);
    expect(run.stdout + run.stderr).not.toContain(SECRET);
    expect(server.seen.find((r) => r.url === '/echo')?.headers['x-api-key']).toBe(SECRET);
    const audit = await iceAsync(['audit', 'show', 'last', '--state', state]);
    expect(audit.code).toBe(0);
    expect(audit.stdout).toContain('[approved by --approve all]');
    expect(audit.stdout).not.toContain(SECRET);
  });

  it('--approve none denies every ask', async () => {
    const secrets = file('secrets-none.yaml', `CLI_API_KEY: ${SECRET}\n`);
    const run = await iceAsync(['run', guestWasm('http-driver'), '--policy', policy(), '--secrets', secrets, '--approve', 'none', '--state', join(dir, 'state'), '--input', input()]);
    expect(run.code, run.stderr).toBe(0);
    const [, second] = run.stdout.split('\n');
    expect(second!.startsWith('err denied ')).toBe(true);
    expect(Buffer.from(second!.split(' ')[2]!, 'hex').toString()).toContain('the approver (--approve none) said no');
  });

  it('without a terminal or --approve, denies asks instead of waiting', async () => {
    const secrets = file('secrets-tty.yaml', `CLI_API_KEY: ${SECRET}\n`);
    const run = await iceAsync(['run', guestWasm('http-driver'), '--policy', policy(), '--secrets', secrets, '--state', join(dir, 'state'), '--input', input()]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.split('\n')[1]!.startsWith('err denied ')).toBe(true);
  });

  it.each([
    ['a secrets file other users can read', () => ['--secrets', file('open.yaml', `CLI_API_KEY: ${SECRET}\n`, 0o644)], 'can be read by other users (mode 644); run chmod 600'],
    ['a secrets file that is not a mapping', () => ['--secrets', file('list.yaml', `- ${SECRET}\n`)], 'must be a mapping of names to values'],
    ['a missing secret', () => [], 'grants.http.allow[0].inject needs the secret CLI_API_KEY'],
    ['--in-process with http', () => ['--secrets', file('ok.yaml', `CLI_API_KEY: ${SECRET}\n`), '--in-process'], 'in-process execution cannot serve'],
    ['a bad --approve', () => ['--approve', 'maybe'], '--approve must be all or none'],
  ])('refuses %s with exit 2 and the fix, never the secret', async (_what, extra, message) => {
    const run = await iceAsync(['run', guestWasm('http-driver'), '--policy', policy(), '--state', join(dir, 'state'), ...extra(), '--input', 'x']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr).not.toContain(SECRET);
    expect(run.stderr).not.toMatch(/\n\s+at /u);
  });
});

describe('the terminal approver', () => {
  const request = { runId: 'r', component: 'c\u202e', call: 'http.fetch', rule: 'grants.http.ask[0]', summary: 'POST https://x.example/\u001b[2J', timeoutMs: 2000 };

  function terminal(answer: string | undefined) {
    const input = Object.assign(new PassThrough(), { isTTY: true });
    const output = Object.assign(new PassThrough(), { isTTY: true });
    let shown = '';
    output.on('data', (d: Buffer) => {
      shown += d.toString();
      if (answer !== undefined && shown.includes('[y/N]')) input.write(`${answer}\n`);
    });
    return { input, output, shown: () => shown };
  }

  it.each([
    ['y', true],
    ['yes', true],
    ['n', false],
    ['', false],
    ['yy', false],
  ])('answers %j as approved=%s, showing the request with controls escaped', async (typed, approved) => {
    const t = terminal(typed);
    const { approve, name } = cliApprover(undefined, t);
    expect(name).toBe('terminal');
    expect(await approve(request)).toEqual({ approved, by: 'terminal' });
    expect(t.shown()).toContain('c\\u202e asks: http.fetch POST https://x.example/\\u001b[2J');
  });

  it('says no when nobody answers within the timeout', async () => {
    const t = terminal(undefined);
    const { approve } = cliApprover(undefined, t);
    expect(await approve({ ...request, timeoutMs: 100 })).toEqual({ approved: false, by: 'terminal' });
  });
});
