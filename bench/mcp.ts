/**
 * `npm run bench` (fifth table): a tools/call of a no-import typed export (calc's `add`) on a warm
 * `ice mcp` server, driven over stdio by the MCP SDK's own client, against the same governed call
 * through the library (Agent.call, no MCP) and against jco's bindings called directly (unmediated,
 * unrecorded, the same instance every time: the floor). Worker execution (the default) and in-process.
 * The issue's goal: a warm tools/call under 5 ms.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { buildGuest } from '../host/src/build/index.js';
import { createHost } from '../host/src/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/dist\/?$/, '');
const work = mkdtempSync(join(tmpdir(), 'ice-bench-mcp-'));
const CALLS = Number(process.env.BENCH_MCP_CALLS ?? 300);
const WARMUP = 30;

interface Stats {
  p50: number;
  p95: number;
  mean: number;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p95: at(0.95), mean: samples.reduce((a, b) => a + b, 0) / samples.length };
}

async function timed(call: (i: number) => Promise<unknown> | unknown): Promise<Stats> {
  for (let i = 0; i < WARMUP; i++) await call(i);
  const samples: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const started = performance.now();
    await call(i);
    samples.push(performance.now() - started);
  }
  return stats(samples);
}

const built = await buildGuest(join(root, 'examples', 'calc'));
const wasm = join(work, 'calc.wasm');
writeFileSync(wasm, built.component);
const policy = join(work, 'calc.policy.yaml');
writeFileSync(policy, 'version: 1\ncomponent: calc\ngrants:\n  kv: { read: ["notes/*"], write: ["notes/*"] }\n');
const config = join(work, 'agents.yaml');
writeFileSync(config, `agents:\n  - { name: calc, component: ${wasm}, policy: ${policy} }\n`);

async function mcp(inProcess: boolean): Promise<Stats> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [join(root, 'bin', 'ice.js'), 'mcp', '--config', config, '--state', join(work, inProcess ? 'mcp-in' : 'mcp-worker'), ...(inProcess ? ['--in-process'] : [])],
    stderr: 'ignore',
  });
  const client = new Client({ name: 'ice-bench', version: '1.0.0' });
  await client.connect(transport);
  try {
    return await timed(async (i) => {
      const result = await client.callTool({ name: 'calc_add', arguments: { a: i, b: 1 } });
      if (result.isError) throw new Error(JSON.stringify(result));
    });
  } finally {
    await client.close();
  }
}

async function library(execution: 'worker' | 'in-process'): Promise<Stats> {
  const host = await createHost({ stateDir: join(work, `lib-${execution}`), execution });
  const agent = await host.load(wasm, policy);
  try {
    return await timed(async (i) => {
      const result = await agent.call('add', { a: i, b: 1 });
      if (!result.ok) throw new Error(result.error);
    });
  } finally {
    host.close();
  }
}

/** jco's bindings of one instance, called directly: no policy, no ledger, no fresh instance. */
async function unmediated(): Promise<Stats> {
  const { transpile } = await import('@bytecodealliance/jco');
  const out = await transpile(built.component, { name: 'calc', instantiation: 'sync' });
  const files = out.files as Record<string, Uint8Array>;
  const glue = join(work, 'calc.mjs');
  writeFileSync(glue, Buffer.from(files['calc.js']!));
  const { instantiate } = (await import(glue)) as { instantiate: (get: (p: string) => WebAssembly.Module, imports: object) => { add(a: number, b: number): number } };
  const kv = { get: () => undefined, set: () => undefined, delete: () => undefined, keys: () => [] };
  const instance = instantiate((path) => new WebAssembly.Module(files[path] as Uint8Array<ArrayBuffer>), { 'ice:agent/kv': kv, 'ice:agent/types': {} });
  return timed((i) => instance.add(i, 1));
}

const rows: [string, Stats][] = [
  ['MCP tools/call, ice mcp (worker execution, default)', await mcp(false)],
  ['MCP tools/call, ice mcp --in-process', await mcp(true)],
  ['library Agent.call (worker), no MCP', await library('worker')],
  ['library Agent.call (in-process), no MCP', await library('in-process')],
  ['jco bindings called directly (one instance, unmediated, unrecorded)', await unmediated()],
];

const base = rows[3]![1].p50;
console.log(`\nA warm tools/call of calc's add (no imports), ${CALLS} sequential calls after ${WARMUP} warm-up; ms`);
console.log(`(node ${process.version}, ${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(2)} at the end: p95 is the first to suffer on a busy machine)\n`);
console.log(`${'path'.padEnd(72)}${'p50'.padStart(9)}${'p95'.padStart(9)}${'mean'.padStart(9)}${'calls/s'.padStart(9)}${'p50 / lib in-proc'.padStart(19)}`);
for (const [name, s] of rows) {
  console.log(
    `${name.padEnd(72)}${s.p50.toFixed(3).padStart(9)}${s.p95.toFixed(3).padStart(9)}${s.mean.toFixed(3).padStart(9)}${Math.round(1000 / s.mean)
      .toString()
      .padStart(9)}${`${(s.p50 / base).toFixed(2)}×`.padStart(19)}`,
  );
}
const [worker, inProcess] = [rows[0]![1], rows[1]![1]];
const verdict = (s: Stats) => (s.p50 < 5 ? 'met' : 'NOT met');
console.log(
  `\ngoal: a warm tools/call under 5 ms — worker: p50 ${worker.p50.toFixed(2)} ms, mean ${worker.mean.toFixed(2)} ms (${verdict(worker)}); ` +
    `in-process: p50 ${inProcess.p50.toFixed(2)} ms, mean ${inProcess.mean.toFixed(2)} ms (${verdict(inProcess)}); ` +
    `MCP adds ${(worker.p50 - rows[2]![1].p50).toFixed(2)} ms (worker) and ${(inProcess.p50 - base).toFixed(2)} ms (in-process) to the library call at p50`,
);
