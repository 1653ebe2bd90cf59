/** `ice build <guest source file or dir> -o <out.wasm>` */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { writeUserFile } from './paths.js';
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
  // Before the build (seconds): an -o that names a directory fails now, not after.
  if (isDirectory(values.out)) {
    throw new UsageError(`ice build: cannot write -o ${values.out}: it is a directory; name a file in it, e.g. -o ${values.out.replace(/\/+$/u, '')}/out.wasm`);
  }
  const result = await buildGuest(resolve(source));
  writeUserFile('build', '-o', values.out, result.component);
  io.stderr(
    `built ${source} (${result.language}) → ${values.out}: component ${result.componentBytes} bytes${result.coreBytes > 0 ? `, core module ${result.coreBytes} bytes` : ''}, ${Math.round(result.ms)} ms\n`,
  );
  return EXIT.ok;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
