//! `ice:agent/clock`: wall-clock time, as the host (and its policy) reports it.

use crate::abi::{ffi, RetArea};
use crate::Error;

/// Milliseconds since the Unix epoch.
pub fn now() -> Result<u64, Error> {
    let mut ret = RetArea::new();
    unsafe { ffi::clock_now(ret.ptr()) };
    if ret.u8_at(0) == 0 {
        Ok(ret.u64_at(8))
    } else {
        Err(ret.take_error(8))
    }
}
