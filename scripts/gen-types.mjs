// Generates the host-side TypeScript types of the ICE world from wit/ with jco (never hand-written):
// a component that imports the whole world is synthesized (`componentEmbed({ dummy: true })`) and
// transpiled; its interface declarations are written to host/src/generated/.
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { componentEmbed, componentNew, transpile } from '@bytecodealliance/jco';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const witDir = join(root, 'wit');
const files = readdirSync(witDir).filter((f) => f.endsWith('.wit')).sort();
const source =
  'package ice:agent@0.1.0;\n' +
  files.map((f) => readFileSync(join(witDir, f), 'utf8').replace(/^\s*package\s+[^;]+;\s*$/m, '')).join('\n');

const embedded = await componentEmbed({ dummy: true, witSource: source, world: 'agent', stringEncoding: 'utf8' });
const component = await componentNew(embedded, []);
const { files: out } = await transpile(component, { name: 'agent', instantiation: 'sync' });

const target = join(root, 'host', 'src', 'generated');
rmSync(target, { recursive: true, force: true });
let count = 0;
for (const [name, bytes] of Object.entries(out)) {
  if (!name.endsWith('.d.ts')) continue;
  const path = join(target, name === 'agent.d.ts' ? 'world.d.ts' : name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, bytes);
  count++;
}
console.log(`gen-types: wrote ${count} declaration files to host/src/generated from wit/`);
