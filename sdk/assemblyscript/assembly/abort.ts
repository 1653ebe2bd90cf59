// The SDK's abort, wired in by the build with `--use abort=~lib/ice/abort/iceAbort`, so the core module
// has no `env.abort` import. It reports the message through log.write at level `error`, then traps.
//
// It must not touch the incremental runtime's shadow stack or allocate: abort is also what the
// shadow-stack overflow check and the allocator call, so a managed local here would recurse. Hence the
// message is read through raw pointers (an AS string is UTF-16 units; its byte length is at ptr - 4)
// into a static buffer, ASCII only: every non-ASCII unit becomes '?', so the bytes are valid UTF-8.
// A second abort while reporting the first (say the host's cabi_realloc failed) traps at once.
import { _log_write } from "./imports";

const ABORT_BUF_SIZE: usize = 1024;
const ABORT_BUF: usize = memory.data(<i32>ABORT_BUF_SIZE);
const ABORT_RET: usize = memory.data(16, 8);
const LEVEL_ERROR: i32 = 4; // log.level.error
let aborting = false;

// Appends the UTF-16 string at `str` (0 = none) as ASCII; returns the new length.
// @ts-ignore: decorator
@inline function appendAscii(n: usize, str: usize): usize {
  if (str != 0) {
    const units = <usize>(load<u32>(str - 4) >> 1);
    for (let i: usize = 0; i < units && n < ABORT_BUF_SIZE; i++) {
      const u = load<u16>(str + (i << 1));
      store<u8>(ABORT_BUF + n, u < 0x80 ? <u8>u : 0x3F); // '?'
      n++;
    }
  }
  return n;
}

// Static ASCII pieces, as raw pointers to their UTF-16 data: a string-typed local, even of a literal,
// would be a managed value and so a shadow-stack slot.
const NO_MESSAGE: usize = changetype<usize>("abort");
const OPEN: usize = changetype<usize>(" (");
const COLON: usize = changetype<usize>(":");
const CLOSE: usize = changetype<usize>(")");

// Appends `v` in decimal; returns the new length.
// @ts-ignore: decorator
@inline function appendU32(n: usize, v: u32): usize {
  let digits: usize = 1;
  for (let t = v; t >= 10; t /= 10) digits++;
  if (n + digits > ABORT_BUF_SIZE) return n;
  let at = n + digits;
  do {
    at--;
    store<u8>(ABORT_BUF + at, <u8>(0x30 + v % 10));
    v /= 10;
  } while (v != 0);
  return n + digits;
}

/** Logs "<message> (<file>:<line>:<column>)" at level error, then traps. */
export function iceAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  const messagePtr = changetype<usize>(message);
  const filePtr = changetype<usize>(fileName);
  if (aborting) unreachable();
  aborting = true;
  let n: usize = 0;
  n = appendAscii(n, messagePtr != 0 ? messagePtr : NO_MESSAGE);
  if (filePtr != 0) {
    n = appendAscii(n, OPEN);
    n = appendAscii(n, filePtr);
    n = appendAscii(n, COLON);
    n = appendU32(n, line);
    n = appendAscii(n, COLON);
    n = appendU32(n, column);
    n = appendAscii(n, CLOSE);
  }
  // The result is ignored: whatever the host says, the run ends here. Any error string the host
  // allocated is not freed: the instance is poisoned by the trap and discarded.
  _log_write(LEVEL_ERROR, ABORT_BUF, n, ABORT_RET);
  unreachable();
}
