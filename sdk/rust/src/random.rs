//! `ice:agent/random`: bytes from the host's cryptographically secure generator.

use crate::abi::{ffi, take_bytes, RetArea};
use crate::Error;

/// `len` random bytes (the policy caps `len`).
pub fn bytes(len: u32) -> Result<Vec<u8>, Error> {
    let mut ret = RetArea::new();
    unsafe { ffi::random_bytes(len, ret.ptr()) };
    if ret.u8_at(0) != 0 {
        return Err(ret.take_error(4));
    }
    Ok(unsafe { take_bytes(ret.u32_at(4), ret.u32_at(8)) })
}
