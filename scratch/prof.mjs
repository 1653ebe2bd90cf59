import { createHost } from '../dist/host/src/index.js';
import { writeFileSync, mkdtempSync, existsSync } from 'node:fs'; import { tmpdir } from 'node:os'; import { join } from 'node:path';
if (!existsSync('/tmp/bench.wasm')) { const { buildGuest } = await import('../dist/host/src/build/index.js'); writeFileSync('/tmp/bench.wasm', (await buildGuest('bench/guest')).component); }
const host = await createHost({ stateDir: mkdtempSync(join(tmpdir(), 'p-')), cacheDir: '/tmp/bench-cache', execution: 'in-process', onGuestLog: () => {} });
const agent = await host.load('/tmp/bench.wasm', 'bench/policy.yaml');
const call = process.argv[2] ?? 'log';
await agent.run(call + ':2000');
const t = performance.now();
const r = await agent.run(call + ':200000');
console.log(((performance.now() - t) * 1000 / 200000).toFixed(2), 'µs/call', r.outcome);
host.close();
