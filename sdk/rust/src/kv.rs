//! `ice:agent/kv`: the component's persistent key-value memory, kept across runs.

use crate::abi::{ffi, take_string, take_string_list, RetArea};
use crate::Error;

/// The value stored under `key`, or `None` when there is none.
pub fn get(key: &str) -> Result<Option<String>, Error> {
    let mut ret = RetArea::new();
    unsafe { ffi::kv_get(key.as_ptr(), key.len(), ret.ptr()) };
    if ret.u8_at(0) != 0 {
        return Err(ret.take_error(4));
    }
    if ret.u8_at(4) == 0 {
        return Ok(None);
    }
    Ok(Some(unsafe { take_string(ret.u32_at(8), ret.u32_at(12)) }))
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: &str) -> Result<(), Error> {
    let mut ret = RetArea::new();
    unsafe { ffi::kv_set(key.as_ptr(), key.len(), value.as_ptr(), value.len(), ret.ptr()) };
    ret.take_status()
}

/// Removes `key`; removing a missing key is not an error.
pub fn delete(key: &str) -> Result<(), Error> {
    let mut ret = RetArea::new();
    unsafe { ffi::kv_delete(key.as_ptr(), key.len(), ret.ptr()) };
    ret.take_status()
}

/// The keys that start with `prefix` and that the policy lets this component read, sorted.
pub fn keys(prefix: &str) -> Result<Vec<String>, Error> {
    let mut ret = RetArea::new();
    unsafe { ffi::kv_keys(prefix.as_ptr(), prefix.len(), ret.ptr()) };
    if ret.u8_at(0) != 0 {
        return Err(ret.take_error(4));
    }
    Ok(unsafe { take_string_list(ret.u32_at(4), ret.u32_at(8)) })
}
