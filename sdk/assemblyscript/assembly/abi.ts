// Canonical ABI glue (wasm32, string-encoding=utf8) shared by every import and by the run export.
//
// Ownership: every buffer that crosses the boundary is an UNMANAGED block (heap.alloc), never a GC
// object, so the collector can neither move nor free it behind the host's back:
//   - arguments we lower are allocated here and freed right after the import returns;
//   - strings/lists the host writes into our memory come from cabi_realloc and are freed by us right
//     after lifting them (error payloads included);
//   - the run result is allocated by lowerRunResult and freed by cabi_post_run.
//
// Result layouts (offsets in the caller-supplied return area), checked against jco 1.35's glue:
//   error (variant, size 12, align 4):      tag u8 @0, string ptr @4, len @8
//   result<_, error>:                       tag @0; err: error @4
//   result<u64, error> (align 8):           tag @0; ok: u64 @8; err: error @8
//   result<list<u8>, error>:                tag @0; ok: ptr @4, len @8; err: error @4
//   result<option<string>, error>:          tag @0; ok: option tag @4, ptr @8, len @12; err: error @4
//   result<list<string>, error>:            tag @0; ok: ptr @4, len @8 (elements: ptr @0, len @4,
//                                           8 bytes each); err: error @4
//   result<string, string> (run):           tag @0; ptr @4, len @8

import { ErrorKind, IceError, Status, STATUS_OK } from "./result";

/** Return area for imports: 24 bytes (result<u64, error> is the largest), 8-aligned. */
export const IMPORT_RET: usize = memory.data(24, 8);
/** Return area of the run export; read by the host, then cabi_post_run frees what it points to. */
export const EXPORT_RET: usize = memory.data(16, 8);

/** Length in bytes of the last string lowered by lowerString (avoids allocating a pair object). */
export let loweredLen: usize = 0;

/**
 * Copies `s` into a new unmanaged block as UTF-8 and returns its pointer; the length is left in
 * `loweredLen`. Lone surrogates become U+FFFD, so the bytes are always valid UTF-8. An empty string
 * allocates nothing (pointer 0, length 0). The caller frees the block with heap.free.
 */
export function lowerString(s: string): usize {
  const n = <usize>String.UTF8.byteLength(s);
  loweredLen = n;
  if (n == 0) return 0;
  const p = heap.alloc(n);
  String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, p, false, String.UTF8.ErrorMode.REPLACE);
  return p;
}

/** Frees a block from lowerString or from the host (heap.free ignores 0 and jco's dangling 1). */
// @ts-ignore: decorator
@inline export function freeBlock(ptr: usize): void {
  heap.free(ptr);
}

/**
 * Decodes `len` bytes of UTF-8 at `ptr` to a string. The host validates UTF-8 already; this stays
 * safe anyway: it never reads outside [ptr, ptr+len) and turns each malformed sequence (bad lead,
 * truncated, overlong, surrogate, > U+10FFFF) into U+FFFD, so the result is always well-formed.
 */
export function decodeUtf8(ptr: usize, len: usize): string {
  if (len == 0) return "";
  // Each input byte yields at most one UTF-16 unit (a 4-byte sequence yields two).
  const out = __new(len << 1, idof<String>());
  let o = out;
  let i = ptr;
  const end = ptr + len;
  while (i < end) {
    let c = <u32>load<u8>(i);
    if (c < 0x80) {
      store<u16>(o, <u16>c);
      o += 2;
      i += 1;
      continue;
    }
    // WHATWG decoding (what TextDecoder and Rust's from_utf8_lossy do): the second byte's range depends
    // on the lead byte, so overlong forms and surrogates are refused as early as possible, and each
    // maximal invalid subpart becomes one U+FFFD; the byte that broke a sequence is decoded afresh.
    let need: usize = 0;
    let lower: u32 = 0x80;
    let upper: u32 = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) { need = 1; c &= 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
      need = 2; c &= 0x0F;
      if (c == 0x0) lower = 0xA0; else if (c == 0xD) upper = 0x9F;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
      need = 3; c &= 0x07;
      if (c == 0x0) lower = 0x90; else if (c == 0x4) upper = 0x8F;
    }
    else {
      store<u16>(o, 0xFFFD);
      o += 2;
      i += 1;
      continue;
    }
    let j: usize = 1;
    let complete = true;
    while (j <= need) {
      if (i + j >= end) { complete = false; break; }
      const b = <u32>load<u8>(i + j);
      if (b < lower || b > upper) { complete = false; break; }
      lower = 0x80;
      upper = 0xBF;
      c = (c << 6) | (b & 0x3F);
      j++;
    }
    i += j; // the lead byte plus the continuation bytes that were valid
    if (!complete) {
      store<u16>(o, 0xFFFD);
      o += 2;
    } else if (c < 0x10000) {
      store<u16>(o, <u16>c);
      o += 2;
    } else {
      c -= 0x10000;
      store<u16>(o, <u16>(0xD800 | (c >> 10)));
      store<u16>(o + 2, <u16>(0xDC00 | (c & 0x3FF)));
      o += 4;
    }
  }
  return changetype<string>(__renew(out, o - out));
}

/** Lifts a host-written string and frees its block. */
export function takeString(ptr: usize, len: usize): string {
  const s = decodeUtf8(ptr, len);
  freeBlock(ptr);
  return s;
}

/** Lifts the `error` variant stored at `at` (tag @0, message @4/@8) and frees the message block. */
export function takeError(at: usize): IceError {
  const tag = load<u8>(at);
  const ptr = load<usize>(at, 4);
  const len = load<usize>(at, 8);
  const message = takeString(ptr, len);
  // The host only writes the four cases; anything else would be a host bug, reported as failed.
  const code = tag <= <u8>ErrorKind.Failed ? <ErrorKind>tag : ErrorKind.Failed;
  return new IceError(code, message);
}

/** Lifts a result<_, error> from IMPORT_RET. */
export function takeStatus(): Status {
  if (load<u8>(IMPORT_RET) == 0) return STATUS_OK;
  return new Status(takeError(IMPORT_RET + 4));
}

/** cabi_realloc for the host: plain unmanaged TLSF blocks (payloads are 16-aligned; CM max is 8). */
export function realloc(oldPtr: usize, oldSize: usize, align: usize, newSize: usize): usize {
  if (oldPtr == 0) return heap.alloc(newSize);
  return heap.realloc(oldPtr, newSize);
}
