/**
 * Load-time refusals. Each names the component, what was refused and how to fix it, so the CLI can
 * print the message as is (exit 2) and embedders can branch on `code`.
 */
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
  | 'too-large';

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
