// Helpers for the entry module the build generates around the guest's `run` (not for guest authors):
//   export function cabi_realloc(...) -> realloc
//   export function run(ptr, len): usize { return lowerRunResult(userRun(liftRunInput(ptr, len))); }
//   export function cabi_post_run(ret) -> postRun
import { EXPORT_RET, freeBlock, loweredLen, lowerString, realloc, takeString } from "./abi";
import { Result } from "./result";
import "./abort"; // so `--use abort=~lib/ice/abort/iceAbort` resolves in every build

export { realloc as __iceRealloc };

/** Lifts the run input (host-allocated through cabi_realloc) and frees its block. */
export function __iceLiftRunInput(ptr: usize, len: usize): string {
  return takeString(ptr, len);
}

/** Lowers run's result<string, string> into EXPORT_RET; the string block is freed by postRun. */
export function __iceLowerRunResult(result: Result<string, string>): usize {
  const s = result.isOk ? result.value : result.error;
  const p = lowerString(s);
  store<u8>(EXPORT_RET, result.isOk ? 0 : 1);
  store<usize>(EXPORT_RET, p, 4);
  store<usize>(EXPORT_RET, loweredLen, 8);
  return EXPORT_RET;
}

/** cabi_post_run: frees the result string once the host has lifted it. */
export function __icePostRun(ret: usize): void {
  freeBlock(load<usize>(ret, 4));
}
