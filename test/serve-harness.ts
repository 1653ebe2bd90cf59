/** A real `ice serve` process for tests: started on a fresh state and a free port, driven over HTTP. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { tempDir } from './helpers.js';
import { guestWasm, ICE_BIN } from './paths.js';

export const HOOK_SECRET = 'hook-secret-for-tests';

export interface Served {
  readonly process: ChildProcess;
  readonly url: string;
  readonly token: string;
  readonly state: string;
  readonly stderr: () => string;
  /** Sends `signal` and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const running = new Set<Served>();

/** Kills every server still running (call in afterEach). */
export async function stopAll(): Promise<void> {
  for (const s of running) await s.stop('SIGKILL');
  running.clear();
}

export function policy(dir: string, name: string, yaml: string): string {
  const path = join(dir, `${name}.policy.yaml`);
  writeFileSync(path, `version: 1\ncomponent: ${name}\n${yaml}`);
  return path;
}

/** The usual cast: an emitter, a subscriber that may receive only notes.added, a faulting agent, a scheduled one. */
export function writeConfig(dir: string, extra = ''): string {
  const emitter = policy(dir, 'emitter', 'grants:\n  log: {}\n  events: { kinds: ["notes.*", "other.*"], maxCalls: 100000 }\n');
  const subscriber = policy(dir, 'subscriber', 'grants:\n  log: {}\n  events: { receive: ["notes.added"] }\n');
  const trapper = policy(dir, 'trapper', 'grants:\n  log: {}\n');
  const path = join(dir, 'ice.yaml');
  writeFileSync(
    path,
    `agents:
  - name: emitter
    component: ${guestWasm('event-emitter')}
    policy: ${emitter}
  - name: notes
    component: ${guestWasm('hello')}
    policy: ${subscriber}
    on: { events: ["notes.*", "other.*"], http: /hooks/notes, verify: { hmac: HOOK_SECRET } }
    queue: 100
  - name: trapper
    component: ${guestWasm('trap')}
    policy: ${trapper}
    faults: { max: 2, windowMs: 60000 }
${extra}`,
  );
  return path;
}

export async function serve(config: string, state = tempDir(), args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const child = spawn(process.execPath, [ICE_BIN, 'serve', '--config', config, '--state', state, '--listen', '127.0.0.1:0', ...args], {
    env: { ...process.env, HOOK_SECRET, ICE_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const info = join(state, 'serve', 'server.json');
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (existsSync(info)) {
      const parsed = JSON.parse(readFileSync(info, 'utf8')) as { url: string; pid: number };
      if (parsed.pid === child.pid) break;
    }
    if (child.exitCode !== null) throw new Error(`ice serve exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`ice serve did not start: ${stderr}`);
    await sleep(50);
  }
  const { url } = JSON.parse(readFileSync(info, 'utf8')) as { url: string };
  const served: Served = {
    process: child,
    url,
    token: readFileSync(join(state, 'serve', 'token'), 'utf8').trim(),
    state,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      running.delete(served);
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  running.add(served);
  return served;
}

export async function api(s: Served, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, any> }> {
  const response = await fetch(`${s.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${s.token}`, 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : body instanceof Uint8Array ? new Blob([new Uint8Array(body)]) : JSON.stringify(body) }),
  });
  return { status: response.status, json: (await response.json()) as Record<string, any> };
}

/** Run-starts in the state's ledger (read-only, as another process). */
export function runStarts(state: string): Array<{ run: string; component: { name: string }; invoke?: any; cause?: any; input: any }> {
  const db = new Database(join(state, 'ice.db'), { readonly: true });
  try {
    return (db.prepare("SELECT body FROM ledger WHERE type = 'run-start' ORDER BY id").pluck().all() as string[]).map((b) => JSON.parse(b));
  } finally {
    db.close();
  }
}

export function outcomes(state: string): Map<string, string> {
  const db = new Database(join(state, 'ice.db'), { readonly: true });
  try {
    return new Map((db.prepare("SELECT run, body ->> '$.outcome' AS outcome FROM ledger WHERE type = 'run-end'").all() as { run: string; outcome: string }[]).map((r) => [r.run, r.outcome]));
  } finally {
    db.close();
  }
}

export async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
