//! The `run` export's glue, used by `export_run!` (not for guest authors).
//!
//! `run(ptr, len) -> retptr` lifts the input (host-allocated through `cabi_realloc`, taken over
//! here), calls the guest, and lowers its `result<string, string>` into a static return area;
//! `cabi_post_run` frees the result string once the host has copied it out.

use crate::abi::{self, ffi, RetArea};
use std::alloc::{dealloc, Layout};
use std::panic::PanicInfo;
use std::sync::Once;

/// The run export's return area: tag @0, string ptr @4, len @8.
#[repr(C, align(8))]
struct ExportRet([u8; 16]);
static mut EXPORT_RET: ExportRet = ExportRet([0; 16]);

static PANIC_HOOK: Once = Once::new();

/// At most this many bytes of a panic message are logged (then "...").
const PANIC_MESSAGE_LIMIT: usize = 900;
const LEVEL_ERROR: i32 = 4;

/// # Safety
/// Called only by the host through the `run` export, with a block from `cabi_realloc`.
pub unsafe fn run(ptr: *mut u8, len: usize, guest: fn(String) -> Result<String, String>) -> *mut u8 {
    PANIC_HOOK.call_once(|| std::panic::set_hook(Box::new(log_panic)));
    let input = unsafe { abi::take_string(ptr as u32, len as u32) };
    let (tag, output) = match guest(input) {
        Ok(s) => (0u8, s),
        Err(s) => (1u8, s),
    };
    // A boxed str has capacity == len, so post_run can free it with (len, 1).
    let output = output.into_boxed_str();
    let (out_ptr, out_len) = (output.as_ptr() as u32, output.len() as u32);
    std::mem::forget(output);
    let area = unsafe { &mut *std::ptr::addr_of_mut!(EXPORT_RET) };
    area.0[0] = tag;
    area.0[4..8].copy_from_slice(&out_ptr.to_le_bytes());
    area.0[8..12].copy_from_slice(&out_len.to_le_bytes());
    area.0.as_mut_ptr()
}

/// # Safety
/// Called only by the host, once per `run`, with the pointer `run` returned.
pub unsafe fn post_run(ret: *mut u8) {
    let (ptr, len) = unsafe { (*(ret.add(4) as *const u32), *(ret.add(8) as *const u32)) };
    if len != 0 {
        unsafe { dealloc(ptr as usize as *mut u8, Layout::from_size_align_unchecked(len as usize, 1)) };
    }
}

/// # Safety
/// See `abi::realloc`.
pub unsafe fn realloc(old: *mut u8, old_len: usize, align: usize, new_len: usize) -> *mut u8 {
    unsafe { abi::realloc(old, old_len, align, new_len) }
}

/// The panic hook: logs "<message> (<file>:<line>:<column>)" at level error. The runtime then
/// aborts (panic = "abort"), which traps the run: the guest never continues in a broken state.
fn log_panic(info: &PanicInfo<'_>) {
    let payload = info.payload();
    let message: &str = if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "panic with a non-string payload"
    };
    let mut text = String::with_capacity(PANIC_MESSAGE_LIMIT + 64);
    if message.len() > PANIC_MESSAGE_LIMIT {
        let mut cut = PANIC_MESSAGE_LIMIT;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        text.push_str(&message[..cut]);
        text.push_str("...");
    } else {
        text.push_str(message);
    }
    if let Some(at) = info.location() {
        text.push_str(&format!(" ({}:{}:{})", at.file(), at.line(), at.column()));
    }
    // Whatever the host answers, the run ends here; an error message it allocated is not freed, as
    // the trapped instance is discarded.
    let mut ret = RetArea::new();
    unsafe { ffi::log_write(LEVEL_ERROR, text.as_ptr(), text.len(), ret.ptr()) };
}
