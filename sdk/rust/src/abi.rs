//! Canonical ABI glue (wasm32, string-encoding=utf8) for every import of the world.
//!
//! Imports: module = the versioned interface name, field = the WIT function name. Every function
//! returns a result with more than one flat value, so the caller passes a pointer to a return area
//! as the last argument and the host writes the result there. Arguments are lowered in place: a Rust
//! `&str` is already UTF-8, so its pointer and length are passed without a copy.
//!
//! Ownership: strings and lists the host writes into our memory come from `cabi_realloc` with
//! (size, align) = (len, 1) for strings and `list<u8>`, (8 × count, 4) for `list<string>`,
//! (16 × count, 4) for lists of two-string records (`list<header>`); we take them over (as
//! `Vec`/`String`) or free them with that same layout.
//!
//! Result layouts (offsets in the return area), the same as the AssemblyScript SDK's, checked
//! against jco 1.35's glue:
//!   error (variant, size 12, align 4):  tag u8 @0, string ptr @4, len @8
//!   result<_, error>:                   tag @0; err: error @4
//!   result<u64, error> (align 8):       tag @0; ok: u64 @8; err: error @8
//!   result<list<u8>, error>:            tag @0; ok: ptr @4, len @8; err: error @4
//!   result<option<string>, error>:      tag @0; ok: option tag @4, ptr @8, len @12; err: error @4
//!   result<list<string>, error>:        tag @0; ok: ptr @4, len @8 (elements: ptr, len; 8 bytes
//!                                       each); err: error @4
//!   result<string, string> (run):       tag @0; ptr @4, len @8
//!   result<response, error> (http):     tag @0; ok: status u16 @4, headers ptr @8, count @12
//!                                       (two-string records), body ptr @16, len @20; err: error @4
//!   result<completion, error> (model):  tag @0; ok: text ptr @4, len @8, input-tokens u32 @12,
//!                                       output-tokens u32 @16; err: error @4
//!   two-string record (header, message): first ptr @0, len @4, second ptr @8, len @12; 16 bytes,
//!                                       align 4, so a `[u32; 4]` per record

use crate::error::Error;
use std::alloc::{self, Layout};

pub(crate) mod ffi {
    // Only the functions a guest calls survive linking, so a component imports exactly the
    // interfaces its guest uses (wit-component drops the rest).
    #[link(wasm_import_module = "ice:agent/log@0.1.0")]
    extern "C" {
        #[link_name = "write"]
        pub fn log_write(level: i32, msg: *const u8, msg_len: usize, ret: *mut u8);
    }
    #[link(wasm_import_module = "ice:agent/clock@0.1.0")]
    extern "C" {
        #[link_name = "now"]
        pub fn clock_now(ret: *mut u8);
    }
    #[link(wasm_import_module = "ice:agent/random@0.1.0")]
    extern "C" {
        #[link_name = "bytes"]
        pub fn random_bytes(len: u32, ret: *mut u8);
    }
    #[link(wasm_import_module = "ice:agent/kv@0.1.0")]
    extern "C" {
        #[link_name = "get"]
        pub fn kv_get(key: *const u8, key_len: usize, ret: *mut u8);
        #[link_name = "set"]
        pub fn kv_set(key: *const u8, key_len: usize, val: *const u8, val_len: usize, ret: *mut u8);
        #[link_name = "delete"]
        pub fn kv_delete(key: *const u8, key_len: usize, ret: *mut u8);
        #[link_name = "keys"]
        pub fn kv_keys(prefix: *const u8, prefix_len: usize, ret: *mut u8);
    }
    #[link(wasm_import_module = "ice:agent/events@0.1.0")]
    extern "C" {
        #[link_name = "emit"]
        pub fn events_emit(kind: *const u8, kind_len: usize, payload: *const u8, payload_len: usize, ret: *mut u8);
    }
    // The request records flatten field by field; `headers` and `messages` point at 16-byte
    // two-string records, and the http body is option<list<u8>>: (is-some, ptr, len).
    #[link(wasm_import_module = "ice:agent/http@0.1.0")]
    extern "C" {
        #[link_name = "fetch"]
        pub fn http_fetch(
            method: *const u8,
            method_len: usize,
            url: *const u8,
            url_len: usize,
            headers: *const [u32; 4],
            headers_len: usize,
            body_is_some: i32,
            body: *const u8,
            body_len: usize,
            ret: *mut u8,
        );
    }
    #[link(wasm_import_module = "ice:agent/model@0.1.0")]
    extern "C" {
        #[link_name = "complete"]
        pub fn model_complete(
            model: *const u8,
            model_len: usize,
            messages: *const [u32; 4],
            messages_len: usize,
            max_tokens: u32,
            ret: *mut u8,
        );
    }
}

/// A return area for one import call: 24 bytes fit every result above (result<response, error> ends
/// at 24, result<u64, error> at 20), 8-aligned for the u64.
#[repr(C, align(8))]
pub(crate) struct RetArea([u8; 24]);

impl RetArea {
    pub(crate) fn new() -> RetArea {
        RetArea([0; 24])
    }

    pub(crate) fn ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    pub(crate) fn u8_at(&self, offset: usize) -> u8 {
        self.0[offset]
    }

    pub(crate) fn u16_at(&self, offset: usize) -> u16 {
        u16::from_le_bytes([self.0[offset], self.0[offset + 1]])
    }

    pub(crate) fn u32_at(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[offset..offset + 4]);
        u32::from_le_bytes(b)
    }

    pub(crate) fn u64_at(&self, offset: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[offset..offset + 8]);
        u64::from_le_bytes(b)
    }

    /// Lifts the `error` variant at `offset`, taking over its message.
    pub(crate) fn take_error(&self, offset: usize) -> Error {
        let message = unsafe { take_string(self.u32_at(offset + 4), self.u32_at(offset + 8)) };
        Error::from_tag(self.u8_at(offset), message)
    }

    /// Lifts a `result<_, error>`.
    pub(crate) fn take_status(&self) -> Result<(), Error> {
        if self.u8_at(0) == 0 {
            Ok(())
        } else {
            Err(self.take_error(4))
        }
    }
}

/// Takes over a host-written byte block of `len` bytes (allocated with align 1).
///
/// # Safety
/// `ptr` must come from `cabi_realloc(0, 0, 1, len)` (or be dangling with `len == 0`) and not be
/// used again by anyone else.
pub(crate) unsafe fn take_bytes(ptr: u32, len: u32) -> Vec<u8> {
    let len = len as usize;
    if len == 0 {
        // Nothing was allocated (the host hands out a dangling pointer for empty lists).
        return Vec::new();
    }
    unsafe { Vec::from_raw_parts(ptr as usize as *mut u8, len, len) }
}

/// Takes over a host-written string. The host only writes valid UTF-8; anything else is repaired
/// (U+FFFD) rather than trusted, so a `String` is never ill-formed.
///
/// # Safety
/// As for `take_bytes`.
pub(crate) unsafe fn take_string(ptr: u32, len: u32) -> String {
    let bytes = unsafe { take_bytes(ptr, len) };
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Takes over a host-written `list<string>` of `count` elements at `ptr`, then frees the element
/// array (allocated with size 8 × count, align 4).
///
/// # Safety
/// `ptr` must come from `cabi_realloc(0, 0, 4, 8 * count)` and each element from `take_string`'s
/// contract.
pub(crate) unsafe fn take_string_list(ptr: u32, count: u32) -> Vec<String> {
    let base = ptr as usize as *const u32;
    let count = count as usize;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (p, l) = unsafe { (*base.add(2 * i), *base.add(2 * i + 1)) };
        out.push(unsafe { take_string(p, l) });
    }
    if count != 0 {
        // 8 * count cannot overflow: the host allocated that many bytes in a 4 GiB memory.
        unsafe { alloc::dealloc(base as *mut u8, Layout::from_size_align_unchecked(8 * count, 4)) };
    }
    out
}

/// Lowers two-string records in place: each `[u32; 4]` points into the borrowed strings, so the
/// records must not outlive them (callers keep both alive across the import call).
pub(crate) fn string_pair_records<'a, I>(pairs: I) -> Vec<[u32; 4]>
where
    I: Iterator<Item = (&'a str, &'a str)>,
{
    pairs.map(|(a, b)| [a.as_ptr() as u32, a.len() as u32, b.as_ptr() as u32, b.len() as u32]).collect()
}

/// Takes over a host-written list of `count` two-string records at `ptr` (`make` builds each
/// element from its two strings), then frees the record array (16 × count bytes, align 4).
///
/// # Safety
/// `ptr` must come from `cabi_realloc(0, 0, 4, 16 * count)` and each string from `take_string`'s
/// contract.
pub(crate) unsafe fn take_string_pairs<T>(ptr: u32, count: u32, make: impl Fn(String, String) -> T) -> Vec<T> {
    let base = ptr as usize as *const u32;
    let count = count as usize;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = unsafe { base.add(4 * i) };
        let (p1, l1, p2, l2) = unsafe { (*at, *at.add(1), *at.add(2), *at.add(3)) };
        let first = unsafe { take_string(p1, l1) };
        out.push(make(first, unsafe { take_string(p2, l2) }));
    }
    if count != 0 {
        // 16 * count cannot overflow: the host allocated that many bytes in a 4 GiB memory.
        unsafe { alloc::dealloc(base as *mut u8, Layout::from_size_align_unchecked(16 * count, 4)) };
    }
    out
}

/// `cabi_realloc`: the allocator the host uses to write strings and lists into guest memory.
///
/// # Safety
/// Called by the host per the canonical ABI: `old` is null with `old_len == 0`, or a block this
/// function returned with that size and `align`.
pub(crate) unsafe fn realloc(old: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    let layout = match Layout::from_size_align(new_len, align) {
        Ok(layout) => layout,
        // An invalid alignment is a host bug; trapping beats corrupting the heap.
        Err(_) => core::arch::wasm32::unreachable(),
    };
    if new_len == 0 {
        if old_len != 0 {
            unsafe { alloc::dealloc(old, Layout::from_size_align_unchecked(old_len, align)) };
        }
        // A dangling, aligned, non-null pointer: nothing to read or free.
        return align as *mut u8;
    }
    let p = if old_len == 0 {
        unsafe { alloc::alloc(layout) }
    } else {
        unsafe { alloc::realloc(old, Layout::from_size_align_unchecked(old_len, align), new_len) }
    };
    if p.is_null() {
        // Out of memory: the host sees a trap, never a null pointer it would write through.
        core::arch::wasm32::unreachable();
    }
    p
}
