import { terminalText } from '../core/text.js';

/** Exit codes (a product contract: scripts rely on them) and the output seam the tests drive. */
export const EXIT = {
  ok: 0,
  /** The guest returned err; or a check failed (audit verify, state verify, a replay diverged). */
  guestError: 1,
  /** Same code as guestError, named for the commands that check. */
  checkFailed: 1,
  /** Usage, policy, load or build error: nothing ran. */
  usage: 2,
  /** The guest trapped (or the host faulted) or a limit ended the run. */
  trap: 3,
} as const;

export interface Io {
  stdout(text: string): void;
  stderr(text: string): void;
  /**
   * Byte-exact machine output (`ice audit export`: its lines are hashed). Raw only where the sink is not
   * a terminal; without it, it is written like stdout.
   */
  data?(text: string): void;
}

export const processIo: Io = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  data: (text) => void process.stdout.write(process.stdout.isTTY ? terminalText(text) : text),
};

/**
 * The one writer every command prints through (`main` hands commands nothing else): control characters,
 * escape sequences and bidi controls in any text, from a guest, a ledger or a policy, become visible
 * `\u` escapes (which are also JSON escapes, so `--json` output stays valid and parses to the original).
 * Newlines and tabs pass: a command that prints guest text keeps it on lines of its own, marked.
 */
export function safeIo(io: Io): Io {
  return {
    stdout: (text) => io.stdout(terminalText(text)),
    stderr: (text) => io.stderr(terminalText(text)),
    data: (text) => (io.data ? io.data(text) : io.stdout(terminalText(text))),
  };
}
