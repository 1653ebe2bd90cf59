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
}

export const processIo: Io = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};
