/**
 * The files and directories users name on the command line, checked before use, so a wrong path is a
 * usage error (exit 2) that says what is wrong and what to pass, never `internal error: EISDIR`.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { pathProblem } from '../core/path-problem.js';
import { UsageError } from './args.js';

/** The bytes of a file the user named (`what`: e.g. `--input-file` or `component`). */
export function readUserFile(command: string, what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`ice ${command}: cannot read ${what} ${path}: ${pathProblem(error)}${fileHint(error)}`);
  }
}

/** Writes a file the user named as output (`-o`), creating its directory. */
export function writeUserFile(command: string, what: string, path: string, bytes: Uint8Array): void {
  const dir = dirname(resolve(path));
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw new UsageError(`ice ${command}: cannot create the directory ${dir} for ${what} ${path}: ${pathProblem(error, 'directory')}; choose another path`);
  }
  try {
    writeFileSync(path, bytes);
  } catch (error) {
    const hint = (error as NodeJS.ErrnoException).code === 'EISDIR' ? `; name a file in it, e.g. ${what} ${path.replace(/\/+$/u, '')}/out.wasm` : '; choose a writable path';
    throw new UsageError(`ice ${command}: cannot write ${what} ${path}: ${pathProblem(error)}${hint}`);
  }
}

/**
 * A --state directory: a file there, or one that cannot be created, is the user's to fix. `create`:
 * make it (commands that write state); otherwise a missing one is left for the caller to report.
 */
export function checkStateDir(command: string, dir: string | undefined, create: boolean): string {
  const path = resolve(dir ?? '.ice');
  const fix = 'pass --state <dir> with a directory (default ./.ice), or a path that does not exist yet';
  try {
    if (!statSync(path).isDirectory()) throw new UsageError(`ice ${command}: --state ${path} is a file, not a directory: ${fix}`);
    return path;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw new UsageError(`ice ${command}: cannot use --state ${path}: ${pathProblem(error, 'directory')}: ${fix}`);
  }
  if (!create) return path;
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new UsageError(`ice ${command}: cannot create the state directory ${path}: ${pathProblem(error, 'directory')}: ${fix}`);
  }
  return path;
}

function fileHint(error: unknown): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return ' (check the path)';
    case 'EISDIR':
      return ': pass a file, not a directory';
    case 'EACCES':
    case 'EPERM':
      return ': make it readable (chmod u+r) or pass another file';
    default:
      return '';
  }
}
