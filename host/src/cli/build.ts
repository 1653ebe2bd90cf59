/** `ice build <guest source file or dir> -o <out.wasm>` */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { buildGuest } from '../build/index.js';
import { onePositional, withUsage, UsageError } from './args.js';
import { parseArgs } from 'node:util';
import { EXIT, type Io } from './io.js';
import { BUILD_USAGE } from './usage.js';

export async function buildCommand(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = withUsage('build', BUILD_USAGE, () =>
    parseArgs({ args: argv, options: { out: { type: 'string', short: 'o' } }, allowPositionals: true, strict: true }),
  );
  const source = onePositional('build', positionals, 'guest source', BUILD_USAGE);
  if (!values.out) throw new UsageError(`ice build: -o <out.wasm> is required\nusage: ${BUILD_USAGE}`);
  const result = await buildGuest(resolve(source));
  mkdirSync(dirname(resolve(values.out)), { recursive: true });
  writeFileSync(values.out, result.component);
  io.stderr(
    `built ${source} (${result.language}) → ${values.out}: component ${result.componentBytes} bytes${result.coreBytes > 0 ? `, core module ${result.coreBytes} bytes` : ''}, ${Math.round(result.ms)} ms\n`,
  );
  return EXIT.ok;
}
