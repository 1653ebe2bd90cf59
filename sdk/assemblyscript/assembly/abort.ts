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

const MESSAGE_LIMIT: usize = 900; // leaves room for the location
const OBJECT_HEADER: usize = 20;   // AS object header; a string's runtime id is at -8, byte length at -4

// Whether `str` points at a readable AS string. Not always so: the incremental runtime's shadow-stack
// overflow check passes pointers to strings that are not in the module's data (asc 0.28), which here
// would read allocator state as text.
// @ts-ignore: decorator
@inline function isReadableString(str: usize): bool {
  const memoryEnd = <usize>memory.size() << 16;
  if (str < OBJECT_HEADER || (str & 1) != 0 || str > memoryEnd) return false;
  if (load<u32>(str - 8) != idof<String>()) return false;
  const size = <usize>load<u32>(str - 4);
  return (size & 1) == 0 && size <= memoryEnd - str;
}

// Appends at most `limit` units of the UTF-16 string at `str` as ASCII ('?' for any other unit) and
// "..." when it was cut; returns the new length.
// @ts-ignore: decorator
@inline function appendAscii(n: usize, str: usize, limit: usize): usize {
  const units = <usize>(load<u32>(str - 4) >> 1);
  let i: usize = 0;
  for (; i < units && i < limit && n < ABORT_BUF_SIZE; i++) {
    const u = load<u16>(str + (i << 1));
    store<u8>(ABORT_BUF + n, u < 0x80 ? <u8>u : 0x3F); // '?'
    n++;
  }
  if (i < units && n + 3 <= ABORT_BUF_SIZE) {
    store<u8>(ABORT_BUF + n, 0x2E); store<u8>(ABORT_BUF + n + 1, 0x2E); store<u8>(ABORT_BUF + n + 2, 0x2E);
    n += 3;
  }
  return n;
}

// Static ASCII pieces, as raw pointers to their UTF-16 data: a string-typed local, even of a literal,
// would be a managed value and so a shadow-stack slot.
const NO_MESSAGE: usize = changetype<usize>("abort without a readable message (e.g. shadow-stack overflow)");
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

/**
 * Logs "<message> (<file>:<line>:<column>)" at level error, then traps. The message is cut at 900
 * units (marked "..."); each non-ASCII UTF-16 unit is written as '?'.
 */
export function iceAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  const messagePtr = changetype<usize>(message);
  const filePtr = changetype<usize>(fileName);
  if (aborting) unreachable();
  aborting = true;
  let n: usize = 0;
  const messageOk = isReadableString(messagePtr);
  n = appendAscii(n, messageOk ? messagePtr : NO_MESSAGE, MESSAGE_LIMIT);
  if (messageOk && isReadableString(filePtr)) {
    n = appendAscii(n, OPEN, ABORT_BUF_SIZE);
    n = appendAscii(n, filePtr, ABORT_BUF_SIZE);
    n = appendAscii(n, COLON, ABORT_BUF_SIZE);
    n = appendU32(n, line);
    n = appendAscii(n, COLON, ABORT_BUF_SIZE);
    n = appendU32(n, column);
    n = appendAscii(n, CLOSE, ABORT_BUF_SIZE);
  }
  // The result is ignored: whatever the host says, the run ends here. Any error string the host
  // allocated is not freed: the instance is poisoned by the trap and discarded.
  _log_write(LEVEL_ERROR, ABORT_BUF, n, ABORT_RET);
  unreachable();
}
