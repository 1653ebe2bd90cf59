/**
 * Load-time refusals. Each names the component, what was refused and how to fix it, so the CLI can
 * print the message as is (exit 2) and embedders can branch on `code`.
 */
import { pathProblem } from '../core/path-problem.js';

export type LoadErrorCode =
  | 'not-found'
  | 'empty'
  | 'not-wasm'
  | 'core-module'
  | 'unsupported-version'
  | 'malformed'
  | 'foreign-import'
  | 'ungranted-import'
  | 'signature-mismatch'
  | 'bad-export'
  | 'prepare-failed'
  /** The policy needs the host thread (http, model, approvals) but execution is in-process. */
  | 'needs-worker'
  /** A rule injects a secret the host does not have. */
  | 'missing-secret'
  /** A grants.wasi.filesystem mount whose host directory does not exist. */
  | 'bad-mount'
  | 'memory-limit'
  /** Larger than the host's maxComponentBytes; refused before it is parsed. */
  | 'too-large'
  /** The policy's `sha256:` pin names another component. */
  | 'pin-mismatch';

export class LoadError extends Error {
  override readonly name = 'LoadError';
  constructor(
    readonly code: LoadErrorCode,
    readonly origin: string,
    message: string,
  ) {
    super(message);
  }
}

/** The one message for a component file that cannot be read, for `ice run` and `ice inspect` alike. */
export function componentUnreadable(path: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const hint = code === 'EISDIR' ? ': pass the .wasm file (`ice build <dir> -o <out.wasm>` makes one from a guest directory)' : code === 'ENOENT' ? ' (check the path; `ice build` makes a component from a guest)' : '';
  return `cannot read component ${path}: ${pathProblem(error)}${hint}`;
}
