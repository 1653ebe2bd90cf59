//! Canonical ABI helpers (wasm32, utf8 strings) for the exports.
//!
//! Arguments: strings and lists arrive in blocks the host allocated through `cabi_realloc` with
//! (size, align) = (len × size of element, align of element); the callee owns them, so they are taken
//! over as `Vec`s (whose dealloc uses that same layout) and freed when dropped.
//!
//! Results that flatten to more than one value are written to a return area and the export returns
//! its address. One static area serves every export: the host copies a result out (and calls the
//! `cabi_post_*` function) before it can call in again.

use std::alloc::{dealloc, Layout};

/// Large and aligned enough for every result of the world: the largest is
/// `tuple<u32, f64, f64>` / `option<point>` (24 bytes, align 8).
#[repr(C, align(8))]
pub struct RetArea([u8; 24]);

static mut RET: RetArea = RetArea([0; 24]);

/// The return area, zeroed, so no byte of a previous result leaks into padding.
pub fn ret_area() -> &'static mut [u8; 24] {
    // Exports run one at a time (a component instance is not reentrant), so this is the only reference.
    let area = unsafe { &mut (*std::ptr::addr_of_mut!(RET)).0 };
    *area = [0; 24];
    area
}

pub fn put_u32(area: &mut [u8; 24], offset: usize, value: u32) {
    area[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

pub fn put_u64(area: &mut [u8; 24], offset: usize, value: u64) {
    area[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

pub fn put_f64(area: &mut [u8; 24], offset: usize, value: f64) {
    area[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

/// Writes `s` as (ptr @offset, len @offset+4) and hands its bytes to the host until `free_string`.
pub fn put_string(area: &mut [u8; 24], offset: usize, s: String) {
    // A boxed str has capacity == len, so free_string can rebuild its layout from (len, 1).
    let s = s.into_boxed_str();
    let (ptr, len) = (s.as_ptr() as u32, s.len() as u32);
    std::mem::forget(s);
    put_u32(area, offset, ptr);
    put_u32(area, offset + 4, len);
}

/// Frees a string `put_string` wrote at `offset` of the area at `ret` (a `cabi_post_*` call).
///
/// # Safety
/// `ret` must be the address an export returned, holding a string from `put_string` at `offset`.
pub unsafe fn free_string(ret: *const u8, offset: usize) {
    let (ptr, len) = unsafe { (*(ret.add(offset) as *const u32), *(ret.add(offset + 4) as *const u32)) };
    if len != 0 {
        unsafe { dealloc(ptr as usize as *mut u8, Layout::from_size_align_unchecked(len as usize, 1)) };
    }
}

/// Takes over a `list<T>` of `len` elements at `ptr`, where `T` has the element's canonical layout.
///
/// # Safety
/// `ptr` must come from `cabi_realloc(0, 0, align_of::<T>(), len * size_of::<T>())`, or `len` be 0.
pub unsafe fn take_list<T>(ptr: *mut T, len: usize) -> Vec<T> {
    if len == 0 {
        // Nothing to own: the pointer of an empty list is any aligned value.
        return Vec::new();
    }
    unsafe { Vec::from_raw_parts(ptr, len, len) }
}

/// Takes over a string argument. The host only writes valid UTF-8; anything else is repaired
/// (U+FFFD) rather than trusted.
///
/// # Safety
/// As for `take_list::<u8>`.
pub unsafe fn take_string(ptr: *mut u8, len: usize) -> String {
    let bytes = unsafe { take_list(ptr, len) };
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// A discriminant outside its type's cases: the canonical ABI traps rather than guess.
pub fn invalid_discriminant() -> ! {
    core::arch::wasm32::unreachable()
}
