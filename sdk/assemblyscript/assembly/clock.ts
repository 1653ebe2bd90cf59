// ice:agent/clock: wall-clock time.
import { _clock_now } from "./imports";
import { IMPORT_RET, takeError } from "./abi";
import { IceError, Result } from "./result";

export namespace clock {
  /** Milliseconds since the Unix epoch (UTC). */
  export function now(): Result<u64, IceError> {
    _clock_now(IMPORT_RET);
    // result<u64, error> is 8-aligned: the payload starts at 8.
    if (load<u8>(IMPORT_RET) == 0) return Result.ok<u64, IceError>(load<u64>(IMPORT_RET, 8));
    return Result.err<u64, IceError>(takeError(IMPORT_RET + 8));
  }
}
