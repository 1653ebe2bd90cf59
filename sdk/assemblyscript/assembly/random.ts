// ice:agent/random: cryptographically secure random bytes.
import { _random_bytes } from "./imports";
import { IMPORT_RET, freeBlock, takeError } from "./abi";
import { IceError, Result } from "./result";

export namespace random {
  /** Exactly `len` random bytes. */
  export function bytes(len: u32): Result<Uint8Array, IceError> {
    _random_bytes(len, IMPORT_RET);
    if (load<u8>(IMPORT_RET) != 0) return Result.err<Uint8Array, IceError>(takeError(IMPORT_RET + 4));
    const ptr = load<usize>(IMPORT_RET, 4);
    const n = load<usize>(IMPORT_RET, 8);
    const out = new Uint8Array(<i32>n);
    memory.copy(out.dataStart, ptr, n);
    freeBlock(ptr);
    return Result.ok<Uint8Array, IceError>(out);
  }
}
