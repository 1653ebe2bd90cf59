import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHost, type Host, type HostOptions } from '../host/src/index.js';
import { ledgerCalls, type LedgerCall } from '../host/src/ledger/index.js';
import { ICE_BIN, ROOT } from './paths.js';

export function tempDir(prefix = 'ice-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A policy file in a fresh temp dir. */
export function writePolicy(yaml: string, name = 'policy.yaml'): string {
  const path = join(tempDir('ice-policy-'), name);
  writeFileSync(path, yaml);
  return path;
}

/** Both ways a host executes runs; behaviour tests run in each. */
export const EXECUTIONS = ['worker', 'in-process'] as const;
export type Execution = (typeof EXECUTIONS)[number];

/** A host on a fresh state dir, with guest logs collected instead of printed. */
export async function freshHost(
  stateDir = tempDir(),
  options: Partial<HostOptions> = {},
): Promise<{ host: Host; stateDir: string; guestLog: string[] }> {
  const guestLog: string[] = [];
  const host = await createHost({
    stateDir,
    cacheDir: join(ROOT, 'build', 'test-cache'),
    onGuestLog: (e) => guestLog.push(`${e.level}: ${e.message}`),
    ...options,
  });
  return { host, stateDir, guestLog };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The real `ice` binary in a child process (requires `npm run build`). */
export function ice(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  const env = { ...process.env, ICE_LOG_LEVEL: 'warn', ...options.env };
  const out = spawnSync(process.execPath, [ICE_BIN, ...args], { cwd: options.cwd ?? ROOT, encoding: 'utf8', env });
  return { code: out.status ?? -1, stdout: out.stdout, stderr: out.stderr };
}

/** A run's calls (a call record, or an intent joined with its result), in order. */
export function callsOf(host: Host, runId: string): LedgerCall[] {
  return ledgerCalls(host.readRun(runId).map((r) => r.record));
}
