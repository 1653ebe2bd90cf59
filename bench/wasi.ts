/**
 * `npm run bench` (fourth table): a 16 MB StarlingMonkey component (guests/js/wasi-agent, built by
 * componentize-js). First load (inspect, admit, jco transpile, fuel metering of a 15 MB core module,
 * compile) against a load from the disk cache in a new process, and the cost of one run (a fresh
 * instance: instantiate + run) in-process and in a worker.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildGuest } from '../host/src/build/index.js';
import { createHost } from '../host/src/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url)).replace(/dist\/?$/, '');
const work = mkdtempSync(join(tmpdir(), 'ice-bench-wasi-'));
const RUNS = Number(process.env.BENCH_WASI_RUNS ?? 20);

try {
  const built = await buildGuest(join(root, 'guests', 'js', 'wasi-agent'));
  const wasm = join(work, 'wasi-agent.wasm');
  writeFileSync(wasm, built.component);
  mkdirSync(join(work, 'data'));
  const policy = join(work, 'policy.yaml');
  writeFileSync(
    policy,
    'version: 1\ncomponent: js-agent\ngrants:\n  log: {}\n  kv: { read: [count], write: [count] }\n  wasi: { env: {}, stdout: capture, stderr: capture, stdin: empty, clocks: allow, random: allow, filesystem: [], sockets: deny, http: deny }\n',
  );
  // Two processes on one state dir: the second finds the prepared component in the disk cache.
  const iceRun = () => {
    const started = performance.now();
    const out = spawnSync(process.execPath, [join(root, 'bin', 'ice.js'), 'run', wasm, '--policy', policy, '--state', join(work, 'state'), '--input', 'env'], { encoding: 'utf8' });
    if (out.status !== 0) throw new Error(`ice run failed: ${out.stderr}`);
    return performance.now() - started;
  };
  const first = iceRun();
  const second = iceRun();

  const timeRuns = async (execution: 'in-process' | 'worker') => {
    const host = await createHost({ stateDir: join(work, 'state'), execution, workers: 1 });
    const t = performance.now();
    const agent = await host.load(wasm, policy);
    const load = performance.now() - t;
    await agent.run('env');
    const started = performance.now();
    for (let i = 0; i < RUNS; i++) await agent.run('env');
    const perRun = (performance.now() - started) / RUNS;
    host.close();
    return { load, perRun };
  };
  const inProcess = await timeRuns('in-process');
  const worker = await timeRuns('worker');

  console.log(`\nA ${(built.componentBytes / 1e6).toFixed(1)} MB componentize-js component (StarlingMonkey), ms\n`);
  const rows: [string, number][] = [
    ['componentize-js build (guests/js/wasi-agent)', built.ms],
    ['ice run, first (cache miss: transpile + meter + compile) — whole process', first],
    ['ice run, second process (disk cache hit) — whole process', second],
    ['host.load from the disk cache, in a running host', inProcess.load],
    [`one run (fresh instance, ~46 WASI calls), in-process, mean of ${RUNS}`, inProcess.perRun],
    [`one run, in a worker, mean of ${RUNS}`, worker.perRun],
  ];
  for (const [label, ms] of rows) console.log(`${label.padEnd(76)} ${ms.toFixed(1).padStart(9)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
