// ice:agent/kv: the component's persistent key-value memory, kept across runs.
import { _kv_delete, _kv_get, _kv_keys, _kv_set } from "./imports";
import { IMPORT_RET, freeBlock, loweredLen, lowerString, takeError, takeStatus, takeString } from "./abi";
import { IceError, Result, Status } from "./result";

export namespace kv {
  /** The value stored under `key`, or null when there is none. */
  export function get(key: string): Result<string | null, IceError> {
    const k = lowerString(key);
    _kv_get(k, loweredLen, IMPORT_RET);
    freeBlock(k);
    if (load<u8>(IMPORT_RET) != 0) return Result.err<string | null, IceError>(takeError(IMPORT_RET + 4));
    if (load<u8>(IMPORT_RET, 4) == 0) return Result.ok<string | null, IceError>(null);
    const ptr = load<usize>(IMPORT_RET, 8);
    const len = load<usize>(IMPORT_RET, 12);
    return Result.ok<string | null, IceError>(takeString(ptr, len));
  }

  /** Stores `value` under `key`. */
  export function set(key: string, value: string): Status {
    const k = lowerString(key);
    const kLen = loweredLen;
    const v = lowerString(value);
    _kv_set(k, kLen, v, loweredLen, IMPORT_RET);
    freeBlock(k);
    freeBlock(v);
    return takeStatus();
  }

  /** Removes `key`; removing a missing key is not an error. */
  export function delete(key: string): Status {
    const k = lowerString(key);
    _kv_delete(k, loweredLen, IMPORT_RET);
    freeBlock(k);
    return takeStatus();
  }

  /** Same as `delete`, for editors that reject a function named `delete`. */
  export function remove(key: string): Status {
    return kv.delete(key);
  }

  /** The keys that start with `prefix` and that the policy lets this component read, sorted. */
  export function keys(prefix: string): Result<string[], IceError> {
    const p = lowerString(prefix);
    _kv_keys(p, loweredLen, IMPORT_RET);
    freeBlock(p);
    if (load<u8>(IMPORT_RET) != 0) return Result.err<string[], IceError>(takeError(IMPORT_RET + 4));
    const list = load<usize>(IMPORT_RET, 4);
    const count = load<usize>(IMPORT_RET, 8);
    const out = new Array<string>(<i32>count);
    for (let i: usize = 0; i < count; i++) {
      const at = list + (i << 3);
      out[<i32>i] = takeString(load<usize>(at), load<usize>(at, 4));
    }
    freeBlock(list);
    return Result.ok<string[], IceError>(out);
  }
}
